"""``report.md``: the run on one page, with paired A/B ratios and an emulated label."""

from __future__ import annotations

from collections.abc import Sequence

SOURCE_TEXT = {
    "usage": "from the server's usage report",
    "chunks": "counted stream chunks (the server sent no usage report)",
    "mixed": "usage report where sent, counted chunks otherwise",
}


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _load(step: dict) -> str:
    return f"{step['users']} users" if step.get("users") is not None else f"{step['rate']:g} req/s"


def _p(step: dict, metric: str, point: str, digits: int = 1) -> str:
    return _fmt(step[metric][point], digits)


def target_label(target: dict) -> str | None:
    """SIMULATED (no server ran), EMULATED (emulated servers ran) or nothing (a real target)."""
    if target.get("simulated"):
        return "SIMULATED"
    return "EMULATED" if target.get("emulated") else None


def render_report(results: dict, plots: Sequence[str]) -> str:
    steps = results["steps"]
    lines = [f"# {results['tool']['name']} report", ""]
    if results["target"].get("simulated"):
        lines += [
            "> **SIMULATED.** No server answered these requests: a discrete-event simulation "
            "of the fleet's server profile produced them (`inferfleet simulate`). Compare them "
            "with a measured run of the same load; they are a prediction, not a measurement.",
            "",
        ]
    elif results["target"].get("emulated"):
        lines += [
            "> **EMULATED TARGET.** These figures come from emulated servers on one machine "
            "(local rehearsal), not from Inferentia or Trainium hardware. They show the client, "
            "the load balancer and the scheduling policy, not model speed.",
            "",
        ]
    if results.get("partial"):
        lines += [
            "> **PARTIAL RESULTS.** The run was interrupted; only the steps below were measured.",
            "",
        ]
    lines += _run_section(results)
    lines += ["## Steps", ""]
    lines += _table(
        ["#", "variant", "load", "valid", "requests", "errors", "TTFT p50", "TTFT p99",
         "ITL p50", "ITL p99", "TPOT p50", "E2E p50", "E2E p99", "tokens/min", "req/s",
         "$/M tokens"],
        [
            [str(step["id"]), step["variant"], _load(step),
             "yes" if step["valid"] else "**no**", str(step["requests"]), str(step["errors"]),
             _p(step, "ttft_ms", "p50"), _p(step, "ttft_ms", "p99"),
             _p(step, "itl_ms", "p50", 2), _p(step, "itl_ms", "p99", 2),
             _p(step, "tpot_ms", "p50", 2), _p(step, "e2e_ms", "p50"), _p(step, "e2e_ms", "p99"),
             _fmt(step["output_tokens_per_min"], 0), _fmt(step["requests_per_s"], 2),
             _fmt(step["cost_per_million_output_tokens"], 3)]
            for step in steps
        ],
    )  # fmt: skip
    lines += ["Latencies in milliseconds.", ""]
    if results["load"]["mode"] == "open":
        lines += [
            "Open loop: latency from each request's scheduled send time includes any wait in "
            "the client for a free connection; from the actual send it does not.",
            "",
        ]
        lines += _table(
            ["#", "TTFT p50 / p99 from send", "TTFT p50 / p99 from schedule",
             "E2E p99 from send", "E2E p99 from schedule", "dispatch lag p99"],
            [
                [str(step["id"]),
                 f"{_p(step, 'ttft_ms', 'p50')} / {_p(step, 'ttft_ms', 'p99')}",
                 f"{_p(step, 'ttft_from_schedule_ms', 'p50')} / "
                 f"{_p(step, 'ttft_from_schedule_ms', 'p99')}",
                 _p(step, "e2e_ms", "p99"), _p(step, "e2e_from_schedule_ms", "p99"),
                 _fmt(step["client"]["dispatch_lag_ms"]["p99"], 2)]
                for step in steps
            ],
        )  # fmt: skip
    invalid = [step for step in steps if not step["valid"]]
    if invalid:
        lines += ["## Invalid steps", ""]
        for step in invalid:
            lines.append(
                f"- step {step['id']} ({step['variant']}, {_load(step)}): "
                + "; ".join(step["invalid_reasons"])
            )
        lines.append("")
    failing = [step for step in steps if step["errors"]]
    if failing:
        lines += ["## Errors", ""]
        for step in failing:
            kinds = ", ".join(f"{kind} x{count}" for kind, count in step["errors_by_kind"].items())
            lines.append(f"- step {step['id']}: {kinds}")
        lines.append("")
    short = [step for step in steps if step["output_length_mismatches"]]
    if short:
        lines += ["## Output lengths", ""]
        for step in short:
            lines.append(
                f"- step {step['id']}: {step['output_length_mismatches']} of {step['succeeded']} "
                "answers did not have the requested number of tokens (the server ignored "
                "min_tokens/ignore_eos or stopped early); tokens/min counts what arrived"
            )
        lines.append("")
    lines += _comparison_section(results.get("comparisons") or [])
    lines += _instance_section(steps)
    if plots:
        lines += ["## Plots", "", *(f"![{name}]({name})" for name in plots), ""]
    return "\n".join(lines)


def _run_section(results: dict) -> list[str]:
    target, workload, load = results["target"], results["workload"], results["load"]
    machine, tool = results["machine"], results["tool"]
    sources = sorted({step["token_source"] for step in results["steps"] if step["token_source"]})
    amount = (
        f"{load['duration']:g} s per step"
        if load.get("duration")
        else f"{load['requests']} requests per step"
    )
    model = f", model `{target['model']}`" if target.get("model") else ""
    limits = f"event-loop lag p99 <= {load['max_loop_lag_ms']:g} ms"
    if load["mode"] == "open":
        limits += f", dispatch lag p99 <= {load['max_dispatch_lag_ms']:g} ms"
    cost = "not computed (give --price-per-hour and --instances)"
    if target.get("price_per_hour") and target.get("instances"):
        cost = f"${target['price_per_hour']:g}/h x {target['instances']} instance(s)"
    return [
        f"- Target: `{target.get('url') or target.get('endpoint_name')}` "
        f"(api `{target['api']}`{model})",
        f"- Cost basis: {cost}",
        f"- Load: {load['mode']} loop, {amount} after {load['warmup']:g} s warm-up, "
        f"repeat {load['repeat']}, {load['workers']} client process(es)",
        f"- Workload: seed {workload['seed']}, prompt tokens {workload['prompt_tokens']}, "
        f"output tokens {workload['output_tokens']}, schedule hash `{workload['hash'][:16]}`",
        "- Token counts: "
        + (", ".join(SOURCE_TEXT.get(source, source) for source in sources) or "none measured"),
        f"- Tool: {tool['name']} {tool.get('version') or ''} on {machine['hostname']} "
        f"({machine['cpus']} CPUs, {machine['platform']})",
        f"- Client limits: {limits}",
        "",
    ]


def _comparison_section(comparisons: list[dict]) -> list[str]:
    if not comparisons:
        return []
    labels = list(comparisons[0]["ratios"])
    rows = []
    for row in comparisons:
        cells = [f"{row['load']:g}", f"{row['variant']} vs {row['baseline']}",
                 f"{row['valid_pairs']}/{row['pairs']}"]  # fmt: skip
        for label in labels:
            ratio = row["ratios"][label]
            span = ""
            if row["pairs"] > 1 and ratio["min"] is not None:
                span = f" ({_fmt(ratio['min'], 2)}..{_fmt(ratio['max'], 2)})"
            cells.append(_fmt(ratio["geomean"], 3) + span)
        rows.append(cells)
    return [
        "## A/B: paired ratios (variant / baseline)",
        "",
        "Each ratio compares the two variants of the same load and repeat, run back to back; "
        "the figure is the geometric mean over repeats (min..max in brackets). Below 1 is lower.",
        "",
        *_table(["load", "variant vs baseline", "valid pairs", *labels], rows),
    ]


def _instance_section(steps: Sequence[dict]) -> list[str]:
    with_rows = [step for step in steps if step["per_instance"]]
    if not with_rows:
        return [
            "## Per instance",
            "",
            "The target named no instance (no `X-Inferfleet-Instance` header, no `instance_id` "
            "in its stream).",
            "",
        ]
    lines = ["## Per instance", ""]
    for step in with_rows:
        lines += [f"Step {step['id']} ({step['variant']}, {_load(step)}):", ""]
        lines += _table(
            ["instance", "requests", "tokens/min", "TTFT p50", "TTFT p99", "E2E p50", "E2E p99"],
            [
                [row["instance"], str(row["requests"]), _fmt(row["output_tokens_per_min"], 0),
                 _p(row, "ttft_ms", "p50"), _p(row, "ttft_ms", "p99"),
                 _p(row, "e2e_ms", "p50"), _p(row, "e2e_ms", "p99")]
                for row in step["per_instance"]
            ],
        )  # fmt: skip
    return lines
