"""Non-streaming JSON classifiers (query intent, duplicate detection).

Latency is the whole exchange; there is no first token, so TTFT equals E2E and
no tokens are counted.
"""

from __future__ import annotations

import json
from time import perf_counter

from inferfleet.cli.bench.clients.base import JSON_HEADERS, Client, StreamFormatError
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec


class ClassifyClient(Client):
    api = "classify"
    streams = False

    async def exchange(self, spec: RequestSpec, record: RequestRecord) -> None:
        body = json.dumps({"inputs": spec.prompt}).encode()
        async with self.session.post(
            self.settings.target, data=body, headers=JSON_HEADERS
        ) as response:
            if not self.note_response(response, record):
                await self.fail_with_body(response, record)
                return
            answer = await response.read()
            record.bytes = len(answer)
            record.end = record.first_token = record.last_token = perf_counter()
        try:
            json.loads(answer)
        except ValueError:
            raise StreamFormatError(f"the answer is not JSON: {answer[:80]!r}") from None
