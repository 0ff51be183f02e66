"""Time to first token and inter-token latency of one stream."""

import time
from collections.abc import Callable


class TokenTimer:
    """Started when a request arrives; each ``mark`` returns the gap since the previous token."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._last = clock()
        self.tokens = 0

    def mark(self) -> float:
        now = self._clock()
        gap, self._last = now - self._last, now
        self.tokens += 1
        return gap
