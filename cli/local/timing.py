"""Timing model of an emulated inference server.

An emulated server runs one scheduler loop that alternates *prefill steps* (new
prompts enter the batch and each yields its first token) and *decode steps*
(every sequence in the batch yields one more token). Steps are ``asyncio``
sleeps, so an emulator costs almost no CPU, yet its latency behaves like a
batching accelerator: time to first token follows the prompt length and the
queue, inter-token latency grows with the batch.

| Parameter | Default | Meaning |
|---|---|---|
| ``slots`` | 4 | Sequences decoded together (static: the batch size); more requests queue |
| ``prefill_base_s`` | 0.005 | Fixed cost of one prefill step, seconds |
| ``prefill_per_token_s`` | 0.0001 | Prefill cost per prompt token, seconds |
| ``decode_base_s`` | 0.02 | Fixed cost of one decode step (weights read once), seconds |
| ``decode_per_sequence_s`` | 0.002 | Decode-step cost per sequence in the batch, seconds |
| ``chars_per_token`` | 4.0 | Prompt characters counted as one token (token ids count exactly) |
| ``chat_tokens_per_message`` | 4 | Tokens a chat template adds around each message |
| ``default_max_tokens`` | 16 | Output length of a request without ``max_tokens`` (OpenAI's) |
| ``max_output_tokens`` | 4096 | Largest ``max_tokens`` accepted; larger gets HTTP 400 |

A prefill step of prompts with ``P`` tokens in total takes
``prefill_base_s + P * prefill_per_token_s``; a decode step over a batch of ``B``
sequences takes ``decode_base_s + B * decode_per_sequence_s``. Every request
produces exactly ``max_tokens`` tokens (as with ``ignore_eos``), one per step
after its prefill. Continuous batching admits a queued request as soon as a
slot frees; requests beyond the slots wait in a FIFO queue. Prefill steps run
before decode steps, so joining prompts stall the batch briefly, as in vLLM
without chunked prefill.

With the defaults one server decodes ``4 / 0.028 s`` = about 143 tokens/s at a
full batch (8,600 tokens/min) and 45 tokens/s for a lone sequence; a
200-token prompt has a time to first token of about 25 ms on an idle server.

Static batching (``mode="static"``) takes up to ``slots`` queued requests,
prefills them together and decodes the batch at its full size until its longest
sequence is done; requests arriving meanwhile wait for the next batch, so time
to first token grows with concurrency.
"""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EmulatorTiming(BaseModel):
    """Timing parameters of an emulated server (see the module docstring's table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Sequences decoded together; the static batch size. More requests queue.",
    )
    prefill_base_s: float = Field(
        default=0.005, ge=0, le=60, description="Fixed cost of one prefill step, seconds."
    )
    prefill_per_token_s: float = Field(
        default=0.0001, ge=0, le=1, description="Prefill cost per prompt token, seconds."
    )
    decode_base_s: float = Field(
        default=0.02, ge=0, le=60, description="Fixed cost of one decode step, seconds."
    )
    decode_per_sequence_s: float = Field(
        default=0.002, ge=0, le=60, description="Decode-step cost per sequence in the batch."
    )
    chars_per_token: float = Field(
        default=4.0, gt=0, le=100, description="Prompt characters counted as one token."
    )
    chat_tokens_per_message: int = Field(
        default=4, ge=0, le=1000, description="Template tokens added per chat message."
    )
    default_max_tokens: int = Field(
        default=16, ge=1, description="Output length when a request sets no max_tokens."
    )
    max_output_tokens: int = Field(
        default=4096, ge=1, le=1_000_000, description="Largest max_tokens accepted."
    )

    @model_validator(mode="after")
    def _default_fits_limit(self) -> Self:
        if self.default_max_tokens > self.max_output_tokens:
            raise ValueError("default_max_tokens must not exceed max_output_tokens")
        return self

    def prefill_s(self, prompt_tokens: int) -> float:
        """Duration of one prefill step over prompts totalling ``prompt_tokens``."""
        return self.prefill_base_s + prompt_tokens * self.prefill_per_token_s

    def decode_step_s(self, batch_size: int) -> float:
        """Duration of one decode step over ``batch_size`` sequences."""
        return self.decode_base_s + batch_size * self.decode_per_sequence_s

    def full_batch_tokens_per_s(self) -> float:
        """Decode throughput of one server with every slot busy."""
        return self.slots / self.decode_step_s(self.slots)
