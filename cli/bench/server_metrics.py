"""The server's own view of a step, scraped from its Prometheus ``/metrics`` while it runs.

``--server-metrics URL[,URL]`` (with ``--local``: every emulated server) is read every
:data:`SCRAPE_INTERVAL_S` during a step. Each figure is a small class naming the
Prometheus series that carry it on vLLM, Triton and the local emulator; a page's
samples of those series are summed over their labels and over the URLs (the fleet's
total), and the step keeps their mean and maximum. Triton's batch size is a ratio of
two counters over the step.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Sequence
from time import perf_counter
from typing import ClassVar

import aiohttp

from inferfleet.cli.bench.models import ServerFigure

SCRAPE_INTERVAL_S = 1.0
SCRAPE_TIMEOUT_S = 2.0
MAX_PAGE_BYTES = 4 << 20
# ``name{labels} value [timestamp]`` of the Prometheus text format.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)", re.MULTILINE)


class ServerMetric:
    """A figure some servers export. Subclasses with a ``key`` register themselves."""

    key: ClassVar[str]
    label: ClassVar[str]
    unit: ClassVar[str] = ""
    series: ClassVar[tuple[str, ...]]  # Prometheus names, any of which carries it
    registry: ClassVar[dict[str, type[ServerMetric]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "key" in cls.__dict__:
            ServerMetric.registry[cls.key] = cls

    @classmethod
    def figure(cls, pages: Sequence[tuple[float, dict[str, float]]]) -> ServerFigure | None:
        """Mean and maximum of the gauge over the step's scrapes (None: no page had it)."""
        values = [
            sum(page[name] for name in cls.series if name in page)
            for _, page in pages
            if any(name in page for name in cls.series)
        ]
        if not values:
            return None
        found = sorted({name for _, page in pages for name in cls.series if name in page})
        return ServerFigure(mean=round(sum(values) / len(values), 4), max=round(max(values), 4),
                            samples=len(values), series=found)  # fmt: skip


class QueueDepth(ServerMetric):
    key = "queue_depth"
    label = "queued requests"
    series = ("vllm:num_requests_waiting", "nv_inference_pending_request_count",
              "inferfleet_emulator_queued_requests")  # fmt: skip


class RunningRequests(ServerMetric):
    key = "running_requests"
    label = "requests in the batch"
    series = ("vllm:num_requests_running", "inferfleet_emulator_active_sequences")


class KvCacheUsage(ServerMetric):
    key = "kv_cache_usage"
    label = "KV-cache use"
    unit = "fraction"
    series = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


class TritonBatchSize(ServerMetric):
    """Inferences per model execution over the step: Triton's dynamic batch size."""

    key = "batch_size"
    label = "batch size (inferences per execution)"
    series = ("nv_inference_count", "nv_inference_exec_count")

    @classmethod
    def figure(cls, pages: Sequence[tuple[float, dict[str, float]]]) -> ServerFigure | None:
        counted = [page for _, page in pages if all(name in page for name in cls.series)]
        if len(counted) < 2:
            return None
        inferences = counted[-1]["nv_inference_count"] - counted[0]["nv_inference_count"]
        executions = counted[-1]["nv_inference_exec_count"] - counted[0]["nv_inference_exec_count"]
        if executions <= 0:
            return None
        ratio = round(inferences / executions, 4)
        return ServerFigure(mean=ratio, max=ratio, samples=len(counted), series=list(cls.series))


WANTED = frozenset(name for metric in ServerMetric.registry.values() for name in metric.series)


def parse_page(text: str) -> dict[str, float]:
    """The wanted series of one page, summed over their label sets."""
    totals: dict[str, float] = defaultdict(float)
    for name, value in _SAMPLE.findall(text):
        if name in WANTED:
            try:
                totals[name] += float(value)
            except ValueError:
                continue
    return dict(totals)


async def scrape(
    session: aiohttp.ClientSession, urls: Sequence[str], pages: list[tuple[float, dict]]
) -> None:
    """Append ``(time, summed page)`` every interval until cancelled; unreachable pages skip."""
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)

    async def one(url: str) -> dict[str, float]:
        try:
            async with session.get(url, timeout=timeout) as response:
                if response.status != 200:
                    return {}
                return parse_page((await response.content.read(MAX_PAGE_BYTES)).decode(
                    "utf-8", "replace"))  # fmt: skip
        except (aiohttp.ClientError, TimeoutError, OSError):
            return {}

    while True:
        started = perf_counter()
        total: dict[str, float] = defaultdict(float)
        for page in await asyncio.gather(*(one(url) for url in urls)):
            for name, value in page.items():
                total[name] += value
        if total:
            pages.append((started, dict(total)))
        await asyncio.sleep(max(0.0, SCRAPE_INTERVAL_S - (perf_counter() - started)))


def server_figures(
    pages: Sequence[tuple[float, dict[str, float]]], window: tuple[float, float]
) -> dict[str, ServerFigure]:
    """Each registered figure over the scrapes taken in the measured window."""
    inside = [(at, page) for at, page in pages if window[0] <= at <= window[1]]
    figures = {key: metric.figure(inside) for key, metric in ServerMetric.registry.items()}
    return {key: figure for key, figure in figures.items() if figure is not None}
