"""PNG plots with matplotlib's Agg backend: latency CDFs, P99 vs load, tokens/min vs load."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from inferfleet.cli.bench.results import OutputDir

CDF_METRICS = (
    ("ttft_ms", "TTFT (ms)"),
    ("itl_ms", "Inter-token latency (ms)"),
    ("e2e_ms", "E2E (ms)"),
)


def write_plots(
    out: OutputDir,
    steps: Sequence[dict],
    latencies: Sequence[dict[str, np.ndarray]],
    *,
    open_loop: bool,
    label: str | None,
) -> list[str]:
    """Draw every plot the measured steps support; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suffix = f" [{label}]" if label else ""
    written = []
    load_label = "offered rate (req/s)" if open_loop else "concurrent users"
    by_load: dict[float, list[int]] = defaultdict(list)
    for position, step in enumerate(steps):
        by_load[step["load"]].append(position)

    for load, positions in by_load.items():
        figure, axes = plt.subplots(1, len(CDF_METRICS), figsize=(15, 4.2))
        for axis, (key, title) in zip(axes, CDF_METRICS, strict=True):
            pooled: dict[str, list[np.ndarray]] = defaultdict(list)
            for position in positions:
                pooled[steps[position]["variant"]].append(latencies[position].get(key, np.empty(0)))
            for variant, arrays in pooled.items():
                values = np.sort(np.concatenate(arrays)) if arrays else np.empty(0)
                if values.size:
                    axis.plot(values, np.arange(1, values.size + 1) / values.size, label=variant)
            axis.set_xlabel(title)
            axis.set_ylabel("fraction of requests" if key != "itl_ms" else "fraction of gaps")
            axis.grid(alpha=0.3)
            if axis.lines:
                _log_scale_when_wide(axis)
                axis.legend(fontsize=8)
        figure.suptitle(f"Latency CDFs at {load:g} {'req/s' if open_loop else 'users'}{suffix}")
        figure.tight_layout()
        name = f"latency_cdf_{'rate' if open_loop else 'users'}_{load:g}.png"
        _save(figure, out, name)
        plt.close(figure)
        written.append(name)

    variants = list(dict.fromkeys(step["variant"] for step in steps))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, (key, title) in zip(
        axes, (("ttft_ms", "P99 TTFT (ms)"), ("e2e_ms", "P99 E2E (ms)")), strict=True
    ):
        for variant in variants:
            xs, ys = _mean_by_load(steps, variant, lambda step, key=key: step[key]["p99"])
            axis.plot(xs, ys, marker="o", label=variant)
        axis.set_xlabel(load_label)
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"P99 latency vs load{suffix}")
    figure.tight_layout()
    _save(figure, out, "p99_latency_vs_load.png")
    plt.close(figure)
    written.append("p99_latency_vs_load.png")

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for variant in variants:
        xs, ys = _mean_by_load(steps, variant, lambda step: step["output_tokens_per_min"])
        axis.plot(xs, ys, marker="o", label=variant)
    axis.set_xlabel(load_label)
    axis.set_ylabel("output tokens per minute")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(f"Throughput vs load{suffix}")
    figure.tight_layout()
    _save(figure, out, "tokens_per_min_vs_load.png")
    plt.close(figure)
    written.append("tokens_per_min_vs_load.png")
    return written


def _save(figure, out: OutputDir, name: str) -> None:  # type: ignore[no-untyped-def]
    with out.atomic(name, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=110)


def _log_scale_when_wide(axis) -> None:  # type: ignore[no-untyped-def]
    """Latencies spanning decades read better on a log axis; narrow ones do not."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    low, high = axis.dataLim.x0, axis.dataLim.x1
    if low > 0 and high / low > 20:
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(NullFormatter())


def _mean_by_load(steps: Sequence[dict], variant: str, value) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    grouped: dict[float, list[float]] = defaultdict(list)
    for step in steps:
        figure = value(step)
        if step["variant"] == variant and figure is not None:
            grouped[step["load"]].append(figure)
    loads = sorted(grouped)
    return loads, [float(np.mean(grouped[load])) for load in loads]
