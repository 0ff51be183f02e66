"""PNG plots with matplotlib's Agg backend, drawn from the typed results.

Latency CDFs per load (metrics marked ``cdf``), then each metric marked
``plotted`` against load (latency: its p99), and, for a scaling study, P99 E2E
and throughput per instance against the instance count. A figure with one load
point draws bars per variant instead of a line on a meaningless axis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from inferfleet.cli.bench.metrics import EndToEnd, LatencyMetric, Metric
from inferfleet.cli.bench.models import RunResults, StepResult, Study
from inferfleet.cli.bench.results import OutputDir

DPI = 110


def write_plots(
    out: OutputDir, results: RunResults, latencies: Sequence[dict[str, np.ndarray]]
) -> list[str]:
    """Draw every plot the measured steps support; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = results.steps
    suffix = f" [{results.label}]" if results.label else ""
    unit = "req/s" if results.open_loop else "users"
    written = []
    by_load: dict[float, list[int]] = defaultdict(list)
    for position, step in enumerate(steps):
        by_load[step.load].append(position)

    cdf_metrics = [m for m in Metric.registry.values() if issubclass(m, LatencyMetric) and m.cdf]
    for load, positions in by_load.items():
        figure, axes = plt.subplots(1, len(cdf_metrics), figsize=(5 * len(cdf_metrics), 4.2))
        for axis, metric in zip(np.atleast_1d(axes), cdf_metrics, strict=True):
            pooled: dict[str, list[np.ndarray]] = defaultdict(list)
            for position in positions:
                pooled[steps[position].variant].append(
                    latencies[position].get(metric.key, np.empty(0))
                )
            for variant, arrays in pooled.items():
                values = np.sort(np.concatenate(arrays)) if arrays else np.empty(0)
                if values.size:
                    axis.plot(values, np.arange(1, values.size + 1) / values.size, label=variant)
            axis.set_xlabel(f"{metric.title} ({metric.unit})")
            axis.set_ylabel(
                "fraction of gaps" if metric.key == "itl_ms" else "fraction of requests"
            )
            axis.grid(alpha=0.3)
            if axis.lines:
                _log_scale_when_wide(axis)
                axis.legend(fontsize=8)
        instances = steps[positions[0]].instances
        where = f" on {instances} instance(s)" if instances else ""
        figure.suptitle(f"Latency CDFs at {load:g} {unit}{where}{suffix}")
        figure.tight_layout()
        name = f"latency_cdf_{'rate' if results.open_loop else 'users'}_{load:g}.png"
        _save(figure, out, name)
        plt.close(figure)
        written.append(name)

    variants = list(dict.fromkeys(step.variant for step in steps))
    load_label = "offered rate (req/s)" if results.open_loop else "concurrent users"
    plotted = [metric for metric in Metric.registry.values() if metric.plotted]
    latency_plotted = [metric for metric in plotted if issubclass(metric, LatencyMetric)]
    figure, axes = plt.subplots(1, len(latency_plotted), figsize=(5.5 * len(latency_plotted), 4.2))
    for axis, metric in zip(np.atleast_1d(axes), latency_plotted, strict=True):
        _against_load(axis, steps, variants, lambda s, m=metric: m.value(s, "p99"), load_label)
        axis.set_ylabel(f"P99 {metric.label} ({metric.unit})")
    figure.suptitle(f"P99 latency vs load{suffix}")
    figure.tight_layout()
    _save(figure, out, "p99_latency_vs_load.png")
    plt.close(figure)
    written.append("p99_latency_vs_load.png")

    for metric in (m for m in plotted if not issubclass(m, LatencyMetric)):
        figure, axis = plt.subplots(figsize=(6.5, 4.2))
        _against_load(axis, steps, variants, lambda s, m=metric: m.value(s), load_label)
        axis.set_ylabel(f"{metric.title} ({metric.unit})")
        axis.set_title(f"{metric.title} vs load{suffix}")
        figure.tight_layout()
        name = f"{metric.key.removeprefix('output_')}_vs_load.png"
        _save(figure, out, name)
        plt.close(figure)
        written.append(name)

    if results.study is not None and results.study.rows:
        written.append(_study_plot(plt, out, results.study, suffix))
    return written


def _against_load(axis, steps: Sequence[StepResult], variants, value, load_label: str) -> None:  # type: ignore[no-untyped-def]
    """A line per variant, or bars when every step ran at one load."""
    loads = sorted({step.load for step in steps})
    if len(loads) == 1:
        means = [_mean_by_load(steps, variant, value)[1] for variant in variants]
        heights = [figures[0] if figures else 0.0 for figures in means]
        axis.bar(range(len(variants)), heights, color=[f"C{n}" for n in range(len(variants))])
        axis.set_xticks(range(len(variants)), variants, fontsize=8)
        axis.set_xlabel(f"at {loads[0]:g} {load_label}")
    else:
        for variant in variants:
            xs, ys = _mean_by_load(steps, variant, value)
            axis.plot(xs, ys, marker="o", label=variant)
        axis.set_xlabel(load_label)
        axis.legend(fontsize=8)
    axis.grid(alpha=0.3)


def _study_plot(plt, out: OutputDir, study: Study, suffix: str) -> str:  # type: ignore[no-untyped-def]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.2))
    instances = [row.instances for row in study.rows]
    for variant in study.variants:
        for axis, cells in (
            (latency, [row.e2e_p99_ms[variant] for row in study.rows]),
            (throughput, [row.tokens_per_instance_per_min[variant] for row in study.rows]),
        ):
            values = [cell.geomean for cell in cells]
            low = [
                v - (c.min or v) if v is not None else 0 for v, c in zip(values, cells, strict=True)
            ]
            high = [
                (c.max or v) - v if v is not None else 0 for v, c in zip(values, cells, strict=True)
            ]
            axis.errorbar(instances, values, yerr=[low, high], marker="o", capsize=3, label=variant)
    latency.set_ylabel(f"P99 {EndToEnd.label} (ms)")
    throughput.set_ylabel("output tokens per instance per minute")
    for axis in (latency, throughput):
        axis.set_xticks(instances)
        axis.set_xlabel("instances")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"{study.users_per_instance} users per instance: P99 E2E and throughput per "
        f"instance{suffix}"
    )
    figure.tight_layout()
    _save(figure, out, "study_vs_instances.png")
    plt.close(figure)
    return "study_vs_instances.png"


def _save(figure, out: OutputDir, name: str) -> None:  # type: ignore[no-untyped-def]
    with out.atomic(name, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=DPI)


def _log_scale_when_wide(axis) -> None:  # type: ignore[no-untyped-def]
    """Latencies spanning decades read better on a log axis; narrow ones do not."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    low, high = axis.dataLim.x0, axis.dataLim.x1
    if low > 0 and high / low > 20:
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(NullFormatter())


def _mean_by_load(
    steps: Sequence[StepResult], variant: str, value
) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    grouped: dict[float, list[float]] = defaultdict(list)
    for step in steps:
        figure = value(step)
        if step.variant == variant and figure is not None:
            grouped[step.load].append(figure)
    loads = sorted(grouped)
    return loads, [float(np.mean(grouped[load])) for load in loads]
