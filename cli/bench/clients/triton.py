"""Triton Inference Server's generate extension: ``/v2/models/<model>/generate_stream``.

Triton maps JSON keys onto model inputs and passes the rest as request
parameters; the keys below are the ones vLLM-style Triton models read. Triton
reports no token usage, so tokens are counted as chunks.
"""

from __future__ import annotations

import json
from time import perf_counter
from urllib.parse import quote

from inferfleet.cli.bench.clients.base import (
    JSON_HEADERS,
    Client,
    StreamFormatError,
    expect_event_stream,
    sse_data,
)
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec
from inferfleet.cli.errors import UserError


class TritonClient(Client):
    api = "triton"

    async def prepare(self) -> None:
        base = self.settings.target.rstrip("/")
        self.model = self.settings.model or await self._only_ready_model(base)
        self.url = f"{base}/v2/models/{quote(self.model)}/generate_stream"

    async def _only_ready_model(self, base: str) -> str:
        index_url = f"{base}/v2/repository/index"
        try:
            async with self.session.post(index_url, json={}) as response:
                status = response.status
                index = await response.json(content_type=None) if status == 200 else []
        except (OSError, ValueError, TimeoutError) as error:
            raise UserError(
                f"--target: cannot read {index_url} ({error}); check the URL or pass --model",
                exit_code=1,
            ) from None
        if status == 404:
            raise UserError(
                f"--api: {base} has no Triton model repository (404 at {index_url}); pick the "
                f"--api the server speaks ({', '.join(Client.registry)})"
            )
        ready = [entry["name"] for entry in index if entry.get("state") == "READY"]
        if len(ready) != 1:
            listed = ", ".join(ready) or "none found"
            raise UserError(f"--model: name the Triton model to call (ready models: {listed})")
        return ready[0]

    def describe(self) -> dict:
        return {"api": self.api, "url": self.url, "model": self.model}

    @staticmethod
    def payload(spec: RequestSpec) -> dict:
        sampling = {
            "max_tokens": spec.output_tokens,
            "min_tokens": spec.output_tokens,
            "ignore_eos": True,
            "temperature": 0.0,
        }
        return {
            "text_input": spec.prompt,
            "stream": True,
            "exclude_input_in_output": True,
            "max_tokens": spec.output_tokens,
            "ignore_eos": True,
            "sampling_parameters": json.dumps(sampling),
        }

    async def exchange(self, spec: RequestSpec, record: RequestRecord) -> None:
        body = json.dumps(self.payload(spec)).encode()
        async with self.session.post(self.url, data=body, headers=JSON_HEADERS) as response:
            if not self.note_response(response, record):
                await self.fail_with_body(response, record)
                return
            expect_event_stream(response)
            async for now, data in sse_data(response, record):
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise StreamFormatError(f"SSE data is not JSON: {data[:80]!r}") from None
                if not isinstance(chunk, dict):
                    raise StreamFormatError(f"SSE data is not a JSON object: {data[:80]!r}")
                if "error" in chunk:
                    record.end = now
                    record.fail("server_error", str(chunk["error"])[:300])
                    return
                self.note_instance(chunk, record)
                if "text_output" not in chunk:
                    raise StreamFormatError("a generate_stream event without 'text_output'")
                if chunk["text_output"]:
                    record.token(now)
        record.end = perf_counter()
