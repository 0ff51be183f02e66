"""SageMaker ``InvokeEndpointWithResponseStream``, signed with SigV4 and read with aiohttp.

boto3's call is blocking, one thread per stream; signing the request with
botocore and reading the AWS event stream asynchronously keeps thousands of
streams on one event loop. ``--target-model`` picks a model on a multi-model
endpoint. Payload parts carry the container's own stream (TGI/LMI
``data: {"token": ...}`` lines, OpenAI chunks or Triton ``text_output``).
"""

from __future__ import annotations

import asyncio
import json
from time import perf_counter
from urllib.parse import quote

from inferfleet.cli.bench.clients.base import YIELD_EVERY_LINES, Client, StreamFormatError
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec
from inferfleet.cli.errors import UserError


class SageMakerClient(Client):
    api = "sagemaker"

    async def prepare(self) -> None:
        import botocore.session
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.eventstream import EventStreamBuffer, ParserError

        # Bound here so no request pays for an import.
        self._request_type, self._events_type, self._parser_error = (
            AWSRequest,
            EventStreamBuffer,
            ParserError,
        )

        session = botocore.session.get_session()
        self.region = self.settings.region or session.get_config_variable("region")
        if not self.region:
            raise UserError("--region: no AWS region configured; pass --region or set AWS_REGION")
        credentials = session.get_credentials()
        if credentials is None:
            raise UserError(
                "--target: no AWS credentials found for the SageMaker runtime; configure a "
                "profile or the AWS_* environment variables",
                exit_code=1,
            )
        self._credentials = credentials
        self._signer_type = SigV4Auth
        base = (
            self.settings.endpoint_url or f"https://runtime.sagemaker.{self.region}.amazonaws.com"
        )
        self.url = (
            f"{base.rstrip('/')}/endpoints/{quote(self.settings.target, safe='')}"
            "/invocations-response-stream"
        )

    def describe(self) -> dict:
        return {
            "api": self.api,
            "endpoint_name": self.settings.target,
            "region": self.region,
            "url": self.url,
            "target_model": self.settings.target_model,
        }

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.settings.target_model:
            headers["X-Amzn-SageMaker-Target-Model"] = self.settings.target_model
        request = self._request_type(method="POST", url=self.url, data=body, headers=headers)
        signer = self._signer_type(
            self._credentials.get_frozen_credentials(), "sagemaker", self.region
        )
        signer.add_auth(request)
        return dict(request.headers.items())

    @staticmethod
    def payload(spec: RequestSpec) -> bytes:
        parameters = {
            "max_new_tokens": spec.output_tokens,
            "min_new_tokens": spec.output_tokens,
            "ignore_eos": True,
            "details": True,
        }
        return json.dumps(
            {"inputs": spec.prompt, "parameters": parameters, "stream": True}
        ).encode()

    async def exchange(self, spec: RequestSpec, record: RequestRecord) -> None:
        body = self.payload(spec)
        async with self.session.post(
            self.url, data=body, headers=self._signed_headers(body)
        ) as response:
            if not self.note_response(response, record):
                await self.fail_with_body(response, record)
                return
            events = self._events_type()
            pending, read = b"", 0
            async for data in response.content.iter_any():
                now = perf_counter()
                record.bytes += len(data)
                events.add_data(data)
                try:
                    messages = list(events)
                except self._parser_error as error:
                    raise StreamFormatError(f"not an AWS event stream: {error}") from None
                for message in messages:
                    headers = message.headers
                    if headers.get(":message-type") != "event":
                        record.end = now
                        kind = (
                            headers.get(":exception-type") or headers.get(":error-code") or "error"
                        )
                        record.fail("stream_error", f"{kind}: {message.payload[:200]!r}")
                        return
                    if headers.get(":event-type") != "PayloadPart":
                        continue
                    pending += message.payload
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        read_payload_line(line, now, record)
                    read += len(lines)
                    if read >= YIELD_EVERY_LINES:
                        read = 0
                        await asyncio.sleep(0)  # as in sse_data: bursts must not hold the loop
            if pending.strip():
                read_payload_line(pending, perf_counter(), record)
        record.end = perf_counter()


def read_payload_line(line: bytes, now: float, record: RequestRecord) -> None:
    """One JSON line of a container's stream: a token, a usage report or nothing."""
    data = line.strip().removeprefix(b"data:").strip()
    if not data or data == b"[DONE]":
        return
    try:
        chunk = json.loads(data)
    except ValueError:
        raise StreamFormatError(f"a payload line is not JSON: {data[:80]!r}") from None
    if not isinstance(chunk, dict):
        return
    Client.note_instance(chunk, record)
    if _chunk_text(chunk):
        record.token(now)
    usage = chunk.get("usage") or {}
    details = chunk.get("details") or {}
    tokens = usage.get("completion_tokens", details.get("generated_tokens"))
    if isinstance(tokens, int):
        record.usage_tokens = tokens


def _chunk_text(chunk: dict) -> str | None:
    token = chunk.get("token")
    if isinstance(token, dict):
        return None if token.get("special") else token.get("text")
    choices = chunk.get("choices")
    if choices:
        choice = choices[0]
        return choice.get("text") or (choice.get("delta") or {}).get("content")
    return chunk.get("text_output") or chunk.get("outputs")
