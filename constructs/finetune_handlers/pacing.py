"""Spacing of CreateTrainingJob calls.

SageMaker allows about one CreateTrainingJob per second per account. The launcher runs with a
reserved concurrency of one, so a pacer kept for the life of its execution environment spaces
every call the function makes.
"""

import time
from collections.abc import Callable


class Pacer:
    def __init__(
        self,
        calls_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_second <= 0:
            raise ValueError("calls_per_second must be positive")
        self.interval = 1.0 / calls_per_second
        self._clock = clock
        self._sleep = sleep
        self._next_at: float | None = None

    def wait(self) -> None:
        """Block until the next call may go out, and book the slot after it."""
        now = self._clock()
        if self._next_at is not None and now < self._next_at:
            self._sleep(self._next_at - now)
            now = self._next_at
        self._next_at = now + self.interval
