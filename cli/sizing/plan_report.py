"""What ``inferfleet plan`` reports: each region and pool, the min/max diff, a plot."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path

from inferfleet.cli.bench.models import SloLimit
from inferfleet.cli.sizing.planner import Demand, Evaluation, RegionSizing, describe_slo
from inferfleet.constructs.props.model_service import MAX_INSTANCES_PER_POOL


def plan_results(
    service: str,
    sizings: Sequence[RegionSizing],
    demand: Demand,
    slo: Sequence[SloLimit],
    prices: dict,
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
                "idle_ttft_p99_s": round(sizing.idle_ttft_p99_s or 0.0, 4),
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
        "prices": prices,
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
    for entry in bounds.values():
        entry["over_limit"] = entry["max"] > MAX_INSTANCES_PER_POOL
    return [bounds[index] for index in sorted(bounds)]


# A TTFT floor this close to the limit leaves the plan sensitive to load and noise.
SENSITIVE_MARGIN = 0.2
_KEY = r"(?P<key>\b{key}\s*:\s*)(?P<value>\d+)"


def yaml_diff(path: Path, text: str, lines: dict, service: str, bounds: Sequence[dict]) -> str:
    """A unified diff of the fleet file with each pool's planned min and max."""
    old = text.splitlines(keepends=True)
    new = planned_text(text, lines, service, bounds).splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, fromfile=str(path), tofile=f"{path} (planned)"))


def planned_text(text: str, lines: dict, service: str, bounds: Sequence[dict]) -> str:
    """The fleet file with each pool's planned min and max, all else as written.

    ``lines`` maps YAML paths to their 1-based line (``YamlDocument.lines``). A pool
    without ``min`` gets one next to its ``max`` (in a flow mapping ``{...}``, or on a
    line of its own above it).
    """
    new = text.splitlines(keepends=True)
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
    return "".join(new)


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
    low, high = latency.dataLim.y0, latency.dataLim.y1
    if low > 0 and high / low > 20:
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


def infeasible_message(results: dict) -> str:
    """Why the plan cannot meet the SLO, and what to change."""
    worst = [r for r in results["regions"] if not r["feasible"]]
    parts = []
    for region in worst:
        predicted = region["peak"]["predicted"]
        parts.append(
            f"{region['region']} (TTFT P99 {predicted['ttft_p99']:.2f} s even with "
            f"{region['peak']['instances']} instances)"
        )
    return (
        "plan: the SLO cannot be met in " + ", ".join(parts) + ": the prefill of the longest "
        "prompts alone takes longer than the limit; shorten --prompt-tokens, raise the pools' "
        "tensor_parallel, or relax --slo"
    )


def print_plan(results: dict, out: Path) -> None:
    """The plan on the terminal: a table per region and pool, totals, the diff."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    demand = results["demand"]
    console.print(
        f"[bold]{results['service']}[/]: {demand['average_output_tokens_per_min']:,} output "
        f"tokens/min average ({demand['average_requests_per_s']:g} req/s), peak x"
        f"{demand['peak_factor']:g}, headroom {demand['headroom']:.0%}, "
        + ("surviving the loss of a region, " if demand["survive_region_loss"] else "")
        + f"SLO {describe_slo([SloLimit(**limit) for limit in results['slo']])} [SIMULATED]"
    )
    table = Table(
        "region",
        "pool",
        "peak req/s",
        "replicas",
        "instances",
        "chips",
        "$/h",
        "min",
        "TTFT P99 at peak",
        "busy",
        "$/M tokens",
    )
    for region in results["regions"]:
        for index, pool in enumerate(region["pools"]):
            first = index == 0
            table.add_row(
                region["region"] if first else "",
                pool["instance_type"],
                f"{region['peak_requests_per_s']:.1f}" if first else "",
                str(pool["peak"]["replicas"]),
                str(pool["peak"]["instances"]),
                f"{pool['peak']['chips']:,}",
                _money(pool["peak"]["dollars_per_hour"]),
                str(pool["average"]["instances"]),
                f"{region['peak']['predicted']['ttft_p99']:.3f} s" if first else "",
                f"{region['peak']['predicted']['utilisation']:.0%}" if first else "",
                _money(region["dollars_per_million_output_tokens"], 3) if first else "",
            )
    totals = results["totals"]
    table.add_row(
        "total",
        "",
        "",
        "",
        str(totals["peak"]["instances"]),
        f"{totals['peak']['chips']:,}",
        _money(totals["peak"]["dollars_per_hour"]),
        str(totals["average"]["instances"]),
        "",
        "",
        _money(totals["dollars_per_million_output_tokens"], 3),
    )
    console.print(table)
    console.print(
        "instances, chips and $/h at peak; busy: output tokens/min at peak over what the replicas "
        "give with full queues; min: instances at the average load; $/M output tokens "
        f"at the average load on the min fleet; prices {results['prices']['region']} on-demand, "
        f"{results['prices']['date']}"
    )
    ttft_limits = [
        limit["limit_ms"] / 1000.0
        for limit in results["slo"]
        if limit["metric"] == "ttft_ms" and limit["point"] == "p99"
    ]
    for region in results["regions"]:
        floor = region["idle_ttft_p99_s"]
        if ttft_limits and region["feasible"] and floor > (1 - SENSITIVE_MARGIN) * ttft_limits[0]:
            console.print(
                f"[yellow]{region['region']}: the prompts' prefill alone gives a TTFT P99 of "
                f"{floor:.2f} s, within {SENSITIVE_MARGIN:.0%} of the limit: little time is left "
                "for queueing, so the fleet runs far from full and its size swings with small "
                "changes of load (see plan.png); shorter prompts or a faster prefill lower it[/]"
            )
    for bound in results["fleet_yaml"]:
        if bound["over_limit"]:
            console.print(
                f"[yellow]pool {bound['pool']} ({bound['instance_type']}): max {bound['max']} is "
                f"above the {MAX_INSTANCES_PER_POOL} instances a pool may have; validate will "
                "refuse it: add a pool of another instance type or another region[/]"
            )
    diff = results["fleet_yaml_diff"]
    if diff:
        console.print("\nmin/max for the fleet file (the most any region needs):")
        console.print(diff, highlight=False, markup=False, end="")
    console.print(f"\nplan.json and plan.png in {out}/")


def _money(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"${value:,.{digits}f}"
