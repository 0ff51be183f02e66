"""The timing model of one inference server replica: batching, slots, prefill and decode costs.

One model, three uses: the local emulator paces its tokens by it, the simulator
replays a fleet of them, and the planner sizes a fleet from it. ``inferfleet
profile fit`` derives one from a bench run of a real endpoint; shipped profiles
come from public Neuron figures (:mod:`inferfleet.cli.sizing.catalog`).

A server runs one scheduler loop that alternates *prefill steps* (new prompts
enter the batch and each yields its first token) and *decode steps* (every
sequence in the batch yields one more token).

| Parameter | Default | Meaning |
|---|---|---|
| ``batching`` | continuous | ``continuous`` (iteration-level) or ``static`` batching |
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

Static batching takes up to ``slots`` queued requests, prefills them together
and decodes the batch at its full size until its longest sequence is done;
requests arriving meanwhile wait for the next batch, so time to first token
grows with concurrency.

The optional ``model_name``, ``instance_type``, ``tensor_parallel``,
``weights_dtype`` and ``source`` say what the parameters describe and where
they come from; the timing ignores them.
"""

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inferfleet.cli.errors import UserError, pydantic_problem
from inferfleet.cli.user_files import (
    check_replaceable_file,
    read_user_file,
    write_file_atomically,
)

Batching = Literal["continuous", "static"]
# A profile is a few hundred bytes of JSON.
MAX_PROFILE_BYTES = 64 * 1024


class ServerProfile(BaseModel):
    """Timing of one server replica (see the module docstring's table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batching: Batching = Field(
        default="continuous", description="continuous (iteration-level) or static batching."
    )
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
    model_name: str | None = Field(default=None, description="Model the profile describes.")
    instance_type: str | None = Field(default=None, description="Instance type it ran on.")
    tensor_parallel: int | None = Field(default=None, ge=1, description="NeuronCores per replica.")
    weights_dtype: str | None = Field(default=None, description="Weights dtype (bf16, int8...).")
    source: str | None = Field(default=None, description="Where the parameters come from.")

    @model_validator(mode="after")
    def _default_fits_limit(self) -> Self:
        if self.default_max_tokens > self.max_output_tokens:
            raise ValueError("default_max_tokens must not exceed max_output_tokens")
        if self.decode_base_s + self.decode_per_sequence_s <= 0:
            raise ValueError(
                "decode_base_s: a decode step must take some time; set decode_base_s or "
                "decode_per_sequence_s above 0"
            )
        return self

    def prefill_s(self, prompt_tokens: int) -> float:
        """Duration of one prefill step over prompts totalling ``prompt_tokens``."""
        return self.prefill_base_s + prompt_tokens * self.prefill_per_token_s

    def decode_step_s(self, batch_size: int) -> float:
        """Duration of one decode step over ``batch_size`` sequences."""
        return self.decode_base_s + batch_size * self.decode_per_sequence_s

    def full_batch_tokens_per_s(self) -> float:
        """Decode throughput of one replica with every slot busy."""
        return self.slots / self.decode_step_s(self.slots)

    def saturated_tokens_per_s(self, prompt_tokens: float, output_tokens: float) -> float:
        """Output tokens/s of a replica that always has requests queued.

        Continuous: every request joins alone and its prefill stalls the batch; static:
        a full batch prefills together. Either way ``slots`` requests take their
        prefills plus ``output_tokens - 1`` decode steps at the full batch.
        """
        if self.batching == "continuous":
            prefills = self.slots * self.prefill_s(round(prompt_tokens))
        else:
            prefills = self.prefill_s(round(self.slots * prompt_tokens))
        decode = (output_tokens - 1) * self.decode_step_s(self.slots)
        return self.slots * output_tokens / (prefills + decode)


def read_profile(path: Path, *, flag: str) -> ServerProfile:
    """A profile from a JSON file; bad files become a ``UserError`` naming ``flag`` and field."""
    content = read_user_file(
        path, flag=flag, what="a server profile's JSON file", limit=MAX_PROFILE_BYTES
    )
    try:
        return ServerProfile.model_validate_json(content)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "file"
        message = pydantic_problem(first)
        raise UserError(f"{flag} {path}: {field}: {message}; fix the file") from None


def write_profile(profile: ServerProfile, path: Path) -> None:
    """Write ``profile`` as JSON, whole or not at all, over nothing but an earlier profile."""
    check_profile_out(path)
    text = profile.model_dump_json(indent=2, exclude_none=True) + "\n"
    write_file_atomically(path, lambda staging: staging.write_text(text), flag="--out")


def check_profile_out(path: Path) -> None:
    """UserError unless ``--out`` is new, empty or an earlier profile (asked before the fit)."""
    check_replaceable_file(
        path, flag="--out", what="a server profile", holds_ours=_is_profile,
        limit=MAX_PROFILE_BYTES + 1,
    )  # fmt: skip


def _is_profile(content: bytes) -> bool:
    if len(content) > MAX_PROFILE_BYTES:
        return False
    try:
        ServerProfile.model_validate_json(content)
    except ValidationError:
        return False
    return True
