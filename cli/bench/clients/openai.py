"""OpenAI-compatible ``/v1/completions`` and ``/v1/chat/completions`` over SSE.

The request asks for exactly the scheduled number of tokens: ``max_tokens``
caps it and ``min_tokens`` + ``ignore_eos`` (vLLM's extensions, ignored by
servers that lack them) stop an early end-of-sequence from shortening it.
"""

from __future__ import annotations

import json
from time import perf_counter

from inferfleet.cli.bench.clients.base import (
    JSON_HEADERS,
    Client,
    StreamFormatError,
    expect_event_stream,
    sse_data,
)
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec


class OpenAIClient(Client):
    api = "openai"

    async def prepare(self) -> None:
        self.url = self.settings.target.rstrip("/") + (
            "/v1/chat/completions" if self.settings.endpoint == "chat" else "/v1/completions"
        )
        self.model = self.settings.model or await self._served_model() or "default"

    async def _served_model(self) -> str | None:
        try:
            async with self.session.get(
                self.settings.target.rstrip("/") + "/v1/models"
            ) as response:
                if response.status != 200:
                    return None
                listing = await response.json(content_type=None)
        except (OSError, ValueError, TimeoutError):
            return None
        models = listing.get("data") if isinstance(listing, dict) else None
        if models and isinstance(models[0], dict) and isinstance(models[0].get("id"), str):
            return models[0]["id"]
        return None

    def describe(self) -> dict:
        return {"api": self.api, "url": self.url, "model": self.model}

    def payload(self, spec: RequestSpec) -> dict:
        body: dict = {
            "model": self.model,
            "max_tokens": spec.output_tokens,
            "min_tokens": spec.output_tokens,
            "ignore_eos": True,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.settings.endpoint == "chat":
            body["messages"] = spec.chat_messages()
        else:
            body["prompt"] = spec.prompt
        return body

    async def exchange(self, spec: RequestSpec, record: RequestRecord) -> None:
        chat = self.settings.endpoint == "chat"
        body = json.dumps(self.payload(spec)).encode()
        async with self.session.post(self.url, data=body, headers=JSON_HEADERS) as response:
            if not self.note_response(response, record):
                await self.fail_with_body(response, record)
                return
            expect_event_stream(response)
            async for now, data in sse_data(response, record):
                if data == b"[DONE]":
                    record.end = now
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise StreamFormatError(f"SSE data is not JSON: {data[:80]!r}") from None
                if not isinstance(chunk, dict):
                    raise StreamFormatError(f"SSE data is not a JSON object: {data[:80]!r}")
                if "error" in chunk:
                    record.end = now
                    record.fail("server_error", json.dumps(chunk["error"])[:300])
                    return
                self.note_instance(chunk, record)
                choices = chunk.get("choices")
                if choices:
                    choice = choices[0]
                    text = choice.get("delta", {}).get("content") if chat else choice.get("text")
                    if text:
                        record.token(now)
                usage = chunk.get("usage")
                if usage:
                    record.usage_tokens = usage.get("completion_tokens")
                    record.usage_prompt_tokens = usage.get("prompt_tokens")
        record.end = perf_counter()
        record.fail("truncated", "the event stream ended without data: [DONE]")
