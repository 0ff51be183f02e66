"""transformers on CPU with the same streaming interface as the Neuron engine.

Each stream decodes on its own worker thread with a KV cache; torch releases the
GIL inside its kernels, so streams progress side by side without batching.
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_engine.base import GenerationRequest
from llm_engine.settings import EngineSettings

_DONE = object()


class TransformersCpuEngine:
    def __init__(self, settings: EngineSettings) -> None:
        self._settings = settings
        self._tokenizer = AutoTokenizer.from_pretrained(settings.model)
        self._model = AutoModelForCausalLM.from_pretrained(settings.model, dtype=torch.float32)
        self._model.eval()
        self._workers = ThreadPoolExecutor(
            max_workers=settings.max_num_seqs, thread_name_prefix="decode"
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, item)

        decoding = loop.run_in_executor(self._workers, self._decode, request, emit, stop)
        try:
            while (item := await pieces.get()) is not _DONE:
                yield str(item)
            await decoding
        finally:
            stop.set()

    def close(self) -> None:
        self._workers.shutdown(wait=True, cancel_futures=True)

    def _decode(
        self, request: GenerationRequest, emit: Callable[[object], None], stop: threading.Event
    ) -> None:
        try:
            self._greedy_decode(request, emit, stop)
        finally:
            emit(_DONE)

    @torch.inference_mode()
    def _greedy_decode(
        self, request: GenerationRequest, emit: Callable[[object], None], stop: threading.Event
    ) -> None:
        prompt_ids = self._tokenizer(request.prompt, return_tensors="pt").input_ids
        budget = self._settings.max_seq_len - prompt_ids.shape[1]
        max_new = min(request.max_tokens, budget)
        generated: list[int] = []
        shown = ""
        step_input, cache = prompt_ids, None
        for _ in range(max_new):
            if stop.is_set():
                return
            output = self._model(input_ids=step_input, past_key_values=cache, use_cache=True)
            cache = output.past_key_values
            token = int(output.logits[0, -1].argmax())
            if token == self._tokenizer.eos_token_id and not request.ignore_eos:
                return
            generated.append(token)
            text = self._tokenizer.decode(generated, skip_special_tokens=True)
            # Byte-level tokenizers can end mid-character; hold it back until complete.
            if text.endswith("\ufffd"):
                emit("")
            else:
                emit(text[len(shown) :])
                shown = text
            step_input = torch.tensor([[token]])
