"""What ``inferfleet plan`` reports: each region and pool, the min/max diff, a plot."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path

from inferfleet.cli.bench.models import SloLimit
from inferfleet.cli.sizing.planner import Demand, Evaluation, RegionSizing
from inferfleet.cli.sizing.prices import PriceTable


def plan_results(
    service: str,
    sizings: Sequence[RegionSizing],
    demand: Demand,
    slo: Sequence[SloLimit],
    prices: PriceTable,
) -> dict:
    """The whole plan as JSON-ready data; money is None where a price is missing."""
    mean_output = demand.mean_output_tokens
    regions = []
    for sizing in sizings:
        pools = []
        for position, pool in enumerate(sizing.region.pools):
            pools.append(
                {
                    "pool": pool.index,
                    "instance_type": pool.instance_type,
                    "replicas_per_instance": pool.replicas_per_instance,
                    "price_per_hour": pool.price_per_hour,
                    "profile_source": pool.profile.source,
                    "peak": _pool_figures(pool, sizing.peak.instances[position]),
                    "average": _pool_figures(pool, sizing.average.instances[position]),
                }
            )
        average_tokens_per_hour = sizing.average_rps * mean_output * 3600.0
        average_cost = _cost(pools, "average")
        regions.append(
            {
                "region": sizing.region.name,
                "weight": sizing.region.weight,
                "average_requests_per_s": round(sizing.average_rps, 3),
                "peak_requests_per_s": round(sizing.peak_rps, 3),
                "feasible": sizing.feasible,
                "pools": pools,
                "peak": _evaluation(sizing.peak, pools, "peak"),
                "average": _evaluation(sizing.average, pools, "average"),
                "dollars_per_million_output_tokens": (
                    round(average_cost / (average_tokens_per_hour / 1e6), 4)
                    if average_cost is not None and average_tokens_per_hour > 0
                    else None
                ),
            }
        )
    return {
        "service": service,
        "simulated": True,
        "slo": [limit.model_dump() for limit in slo],
        "demand": {
            "average_requests_per_s": round(demand.requests_per_s, 3),
            "average_output_tokens_per_min": round(demand.requests_per_s * mean_output * 60.0),
            "mean_output_tokens": round(mean_output, 1),
            "prompt_tokens": str(demand.prompt_tokens),
            "output_tokens": str(demand.output_tokens),
            "peak_factor": demand.peak_factor,
            "headroom": demand.headroom,
            "survive_region_loss": demand.survive_region_loss,
        },
        "prices": {"date": prices.date, "region": prices.region, "currency": prices.currency},
        "feasible": all(sizing.feasible for sizing in sizings),
        "regions": regions,
        "totals": _totals(regions, demand.requests_per_s * mean_output * 3600.0),
        "fleet_yaml": suggested_bounds(sizings),
    }


def _pool_figures(pool, instances: int) -> dict:  # type: ignore[no-untyped-def]
    return {
        "instances": instances,
        "replicas": instances * pool.replicas_per_instance,
        "chips": instances * pool.chips_per_instance,
        "dollars_per_hour": (
            round(instances * pool.price_per_hour, 2) if pool.price_per_hour is not None else None
        ),
    }


def _cost(pools: list[dict], which: str) -> float | None:
    costs = [pool[which]["dollars_per_hour"] for pool in pools]
    return None if any(cost is None for cost in costs) else round(sum(costs), 2)


def _evaluation(evaluation: Evaluation, pools: list[dict], which: str) -> dict:
    return {
        "requests_per_s": round(evaluation.requests_per_s, 3),
        "instances": evaluation.total,
        "chips": sum(pool[which]["chips"] for pool in pools),
        "dollars_per_hour": _cost(pools, which),
        "predicted": {
            key: None if value is None else round(value, 4)
            for key, value in evaluation.figures.items()
        },
        "missed": list(evaluation.missed),
    }


def _totals(regions: list[dict], average_tokens_per_hour: float) -> dict:
    totals: dict = {}
    for which in ("peak", "average"):
        costs = [region[which]["dollars_per_hour"] for region in regions]
        totals[which] = {
            "instances": sum(region[which]["instances"] for region in regions),
            "chips": sum(region[which]["chips"] for region in regions),
            "dollars_per_hour": None if None in costs else round(sum(costs), 2),
        }
    cost = totals["average"]["dollars_per_hour"]
    totals["dollars_per_million_output_tokens"] = (
        round(cost / (average_tokens_per_hour / 1e6), 4)
        if cost is not None and average_tokens_per_hour
        else None
    )
    return totals


def suggested_bounds(sizings: Sequence[RegionSizing]) -> list[dict]:
    """Per pool of the fleet file: min = the most any region needs at the average load,
    max = the most any region needs at peak (one min/max applies to all its regions)."""
    bounds: dict[int, dict] = {}
    for sizing in sizings:
        for position, pool in enumerate(sizing.region.pools):
            entry = bounds.setdefault(
                pool.index,
                {
                    "pool": pool.index,
                    "instance_type": pool.instance_type,
                    "min": 0,
                    "max": 0,
                    "current_min": pool.current_min,
                    "current_max": pool.current_max,
                },
            )
            entry["min"] = max(entry["min"], sizing.average.instances[position])
            entry["max"] = max(entry["max"], sizing.peak.instances[position])
    return [bounds[index] for index in sorted(bounds)]


_KEY = r"(?P<key>\b{key}\s*:\s*)(?P<value>\d+)"


def yaml_diff(path: Path, text: str, lines: dict, service: str, bounds: Sequence[dict]) -> str:
    """A unified diff of the fleet file with each pool's planned min and max.

    ``lines`` maps YAML paths to their 1-based line (``YamlDocument.lines``). A pool
    without ``min`` gets one next to its ``max`` (in a flow mapping ``{...}``, or on a
    line of its own above it).
    """
    old = text.splitlines(keepends=True)
    new = list(old)
    inserted: dict[int, str] = {}
    for bound in bounds:
        base = ("services", service, "pools", bound["pool"])
        max_line = lines[(*base, "max")] - 1
        new[max_line] = _set(new[max_line], "max", bound["max"])
        min_at = lines.get((*base, "min"))
        if min_at is not None:
            new[min_at - 1] = _set(new[min_at - 1], "min", bound["min"])
        elif "{" in new[max_line]:
            new[max_line] = re.sub(
                r"\bmax\s*:", f"min: {bound['min']}, max:", new[max_line], count=1
            )
        else:
            indent = re.match(r"\s*(?:-\s*)?", new[max_line]).group(0)  # type: ignore[union-attr]
            inserted[max_line] = " " * len(indent) + f"min: {bound['min']}\n"
    for at in sorted(inserted, reverse=True):
        new.insert(at, inserted[at])
    return "".join(difflib.unified_diff(old, new, fromfile=str(path), tofile=f"{path} (planned)"))


def _set(line: str, key: str, value: int) -> str:
    return re.sub(_KEY.format(key=key), lambda m: f"{m.group('key')}{value}", line, count=1)


def write_plot(results: dict, sizings: Sequence[RegionSizing], path: Path) -> None:
    """Predicted TTFT P99 and $/hour against instance count at peak, one line per region."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, cost) = plt.subplots(1, 2, figsize=(12, 4.4))
    for sizing in sizings:
        at_peak = sorted(
            {e.total: e for e in sizing.tried if e.requests_per_s == sizing.peak_rps}.values(),
            key=lambda e: e.total,
        )
        xs = [e.total for e in at_peak]
        ttft = [e.figures["ttft_p99"] for e in at_peak]
        (line,) = latency.plot(xs, ttft, marker="o", label=sizing.region.name)
        latency.scatter(
            [sizing.peak.total],
            [sizing.peak.figures["ttft_p99"]],
            s=120,
            facecolors="none",
            edgecolors=line.get_color(),
        )
        prices = [p.price_per_hour for p in sizing.region.pools]
        if None not in prices:
            hourly = [
                sum(n * price for n, price in zip(e.instances, prices, strict=True))
                for e in at_peak
            ]
            cost.plot(xs, hourly, marker="o", color=line.get_color(), label=sizing.region.name)
    for limit in results["slo"]:
        if limit["metric"] == "ttft_ms" and limit["point"] == "p99":
            seconds = limit["limit_ms"] / 1000.0
            latency.axhline(seconds, color="grey", linestyle="--", label=f"SLO {seconds:g} s")
    latency.set_yscale("log")
    latency.set_xlabel("instances in the region")
    latency.set_ylabel("predicted TTFT P99 at peak (s)")
    latency.legend(fontsize=8)
    latency.grid(alpha=0.3)
    cost.set_xlabel("instances in the region")
    cost.set_ylabel(f"{results['prices']['currency']} per hour (on-demand)")
    cost.grid(alpha=0.3)
    if cost.lines:
        cost.legend(fontsize=8)
    figure.suptitle(f"inferfleet plan: {results['service']} [SIMULATED]; circles: the plan")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
