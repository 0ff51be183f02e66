"""The contract every engine meets: one prompt in, an async stream of text pieces out."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    prompt: str
    max_tokens: int
    # Benchmarks ask for exact output lengths; production stops at end-of-sequence.
    ignore_eos: bool = False


class StreamingEngine(Protocol):
    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """Yield one text piece per generated token; stopping early cancels the generation."""
        ...

    def close(self) -> None:
        """Release devices and worker threads."""
        ...
