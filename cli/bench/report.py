"""``report.md`` and a self-contained ``report.html``: the run on one page, from the typed results.

Both are rendered from one list of blocks (headings, paragraphs, tables, plots),
so they always say the same. The HTML inlines its plots as data URIs and its
style, so it opens from disk without a server. An emulated target is labelled
as such at the top of both.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inferfleet.cli.bench.metrics import LatencyMetric, Metric, StepMetric
from inferfleet.cli.bench.models import RunResults, StepResult

SOURCE_TEXT = {
    "usage": "from the server's usage report",
    "chunks": "counted stream chunks (the server sent no usage report)",
    "mixed": "usage report where sent, counted chunks otherwise",
}
EMULATED_TEXT = (
    "**EMULATED TARGET.** These figures come from emulated servers on one machine (local "
    "rehearsal), not from Inferentia or Trainium hardware. They show the client, the load "
    "balancer and the scheduling policy, not model speed."
)
SIMULATED_TEXT = (
    "**SIMULATED.** No server answered these requests: a discrete-event simulation of the "
    "fleet's server profile produced them (`inferfleet simulate`). Compare them with a "
    "measured run of the same load; they are a prediction, not a measurement."
)
PARTIAL_TEXT = "**PARTIAL RESULTS.** The run was interrupted; only the steps below were measured."


@dataclass(frozen=True, slots=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True, slots=True)
class Paragraph:
    text: str
    banner: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True, slots=True)
class Plot:
    name: str


Block = Heading | Paragraph | Table | Plot


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def blocks(results: RunResults, plots: Sequence[str]) -> list[Block]:
    steps = results.steps
    out: list[Block] = [Heading(f"{results.tool.get('name', 'inferfleet bench')} report", 1)]
    label = results.label
    if label == "SIMULATED":
        out.append(Paragraph(SIMULATED_TEXT, banner=True))
    elif label == "EMULATED":
        out.append(Paragraph(EMULATED_TEXT, banner=True))
    if results.partial:
        out.append(Paragraph(PARTIAL_TEXT, banner=True))
    out += _study_section(results, plots)
    out += _max_load_section(results)
    out += _run_section(results)
    out += [Heading("Steps"), _steps_table(results), Paragraph("Latencies in milliseconds.")]
    if results.slo:
        out += _goodput_section(results)
    if results.open_loop:
        out += _open_loop_section(steps)
    invalid = [step for step in steps if not step.valid]
    if invalid:
        out.append(Heading("Invalid steps"))
        out += [
            Paragraph(
                f"- step {s.id} ({s.variant}, {s.load_text}): " + "; ".join(s.invalid_reasons)
            )
            for s in invalid
        ]
    out += _server_section(steps)
    out += _timeline_section(steps)
    noted = [step for step in steps if step.notes]
    if noted:
        out.append(Heading("Notes"))
        out += [Paragraph(f"- step {s.id}: " + "; ".join(s.notes)) for s in noted]
    failing = [step for step in steps if step.errors]
    if failing:
        out.append(Heading("Errors"))
        out += [
            Paragraph(
                f"- step {s.id}: "
                + ", ".join(f"{name} {count}" for name, count in s.errors_by_class.items())
                + " ("
                + ", ".join(f"{kind} x{count}" for kind, count in s.errors_by_kind.items())
                + ")"
            )
            for s in failing
        ]
        out.append(Paragraph("Failed requests are never retried: each is one failure above."))
    short = [step for step in steps if step.output_length_mismatches]
    if short:
        out.append(Heading("Output lengths"))
        out += [
            Paragraph(
                f"- step {s.id}: {s.output_length_mismatches} of {s.succeeded} answers did not "
                "have the requested number of tokens (the server ignored min_tokens/ignore_eos "
                "or stopped early); tokens/min counts what arrived"
            )
            for s in short
        ]
    out += _comparison_section(results)
    out += _instance_section(steps)
    shown = [name for name in plots if name != "study_vs_instances.png"]
    if shown:
        out += [Heading("Plots"), *(Plot(name) for name in shown)]
    return out


def _study_section(results: RunResults, plots: Sequence[str]) -> list[Block]:
    study = results.study
    if study is None or not study.rows:
        return []
    first, second = study.variants
    a, b = (name.partition("=")[2] or name for name in study.variants)
    repeats = results.load.get("repeat", 1)
    out: list[Block] = [
        Heading(f"Study: {a} vs {b}, {study.users_per_instance} users per instance"),
        Paragraph(
            f"Users and instances scaled together; each instance count ran {a} and {b} back "
            f"to back ({repeats} pair(s), A B A B). Figures are geometric means over the pairs "
            "(min..max in brackets); an improvement is how much lower "
            f"{a}'s P99 E2E latency and how much higher its throughput per instance per "
            f"minute were than {b}'s, pair by pair."
        ),
        Table(
            [
                "instances",
                "users",
                f"P99 E2E {a} (ms)",
                f"P99 E2E {b} (ms)",
                "P99 E2E improvement",
                f"tokens/instance/min {a}",
                f"tokens/instance/min {b}",
                "throughput improvement",
            ],
            [
                [
                    str(row.instances),
                    str(row.users),
                    _cell(row.e2e_p99_ms[first].geomean, row.e2e_p99_ms[first], 0),
                    _cell(row.e2e_p99_ms[second].geomean, row.e2e_p99_ms[second], 0),
                    _pct_cell(row.e2e_p99_improvement_pct, repeats),
                    _cell(
                        row.tokens_per_instance_per_min[first].geomean,
                        row.tokens_per_instance_per_min[first],
                        0,
                    ),
                    _cell(
                        row.tokens_per_instance_per_min[second].geomean,
                        row.tokens_per_instance_per_min[second],
                        0,
                    ),
                    _pct_cell(row.throughput_improvement_pct, repeats),
                ]
                for row in study.rows
            ],
        ),
    ]
    if "study_vs_instances.png" in plots:
        out.append(Plot("study_vs_instances.png"))
    return out


def _cell(value: float | None, spread, digits: int) -> str:  # type: ignore[no-untyped-def]
    if value is None:
        return "-"
    text = _fmt(float(value), digits)
    if spread.min is not None and spread.max is not None and spread.min != spread.max:
        text += f" ({_fmt(float(spread.min), digits)}..{_fmt(float(spread.max), digits)})"
    return text


def _pct_cell(cell, repeats: int) -> str:  # type: ignore[no-untyped-def]
    text = _signed(cell.geomean)
    if repeats > 1 and cell.min is not None and cell.max is not None:
        text += f" ({_signed(cell.min)}..{_signed(cell.max)})"
    return text


def _max_load_section(results: RunResults) -> list[Block]:
    search = results.max_load
    if search is None:
        return []
    unit = "req/s" if search.mode == "rate" else "users"
    limits = ", ".join(f"{limit.name} <= {limit.limit_ms:g} ms" for limit in results.slo)
    best = f"{search.best:g} {unit}" if search.best is not None else "none"
    above = f"{search.failed_above:g} {unit}" if search.failed_above is not None else "not found"
    probes = ", ".join(f"{load:g} ({'met' if met else 'missed'})" for load, met in search.probes)
    lines = [
        Heading("Largest load meeting the SLO"),
        Paragraph(
            f"SLO: {limits}. Largest load that met it: **{best}**; smallest that missed it: "
            f"{above}. Probes in order: {probes}."
        ),
    ]
    if search.note:
        lines.append(Paragraph(search.note.capitalize() + "."))
    return lines


def _server_prompt_counts(steps: Sequence[StepResult]) -> str:
    """How the server's usage report counted the prompts against the client's count."""
    ratios = [(step.id, step.server_prompt_tokens_ratio) for step in steps]
    shown = [f"step {number} x{ratio:.3f}" for number, ratio in ratios if ratio is not None]
    if not shown:
        return "the server reported no prompt tokens to compare"
    return "the server counted " + ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")


def _run_section(results: RunResults) -> list[Block]:
    target, workload, load = results.target, results.workload, results.load
    machine, tool = results.machine, results.tool
    sources = sorted({step.token_source for step in results.steps if step.token_source})
    amount = (
        f"{load['duration']:g} s per step"
        if load.get("duration")
        else f"{load['requests']} requests per step"
    )
    model = f", model `{target['model']}`" if target.get("model") else ""
    limits = f"event-loop lag p99 <= {load['max_loop_lag_ms']:g} ms"
    if results.open_loop:
        limits += f", dispatch lag p99 <= {load['max_dispatch_lag_ms']:g} ms"
    limits += f", error rate <= {load.get('max_error_rate', 0):g}"
    cost = "not computed (give --price-per-hour and --instances)"
    if target.get("price_per_hour") and target.get("instances"):
        cost = f"${target['price_per_hour']:g}/h x {target['instances']} instance(s)"
    lines = [
        f"- Target: `{target.get('url') or target.get('endpoint_name')}` "
        f"(api `{target['api']}`{model})",
        f"- Cost basis: {cost}",
        f"- Load: {load['mode']} loop, {amount} after {load['warmup']:g} s warm-up, "
        f"repeat {load['repeat']}, {load['workers']} client process(es)",
        f"- Workload: seed {workload['seed']}, prompt tokens {workload['prompt_tokens']}, "
        f"output tokens {workload['output_tokens']}, schedule hash `{workload['hash'][:16]}`",
        "- Token counts: "
        + (", ".join(SOURCE_TEXT.get(source, source) for source in sources) or "none measured"),
        f"- Prompt tokens: {workload.get('prompt_tokens_note', 'counted as words')}; "
        + _server_prompt_counts(results.steps),
        f"- Tool: {tool['name']} {tool.get('version') or ''} on {machine['hostname']} "
        f"({machine['cpus']} CPUs, {machine['platform']})",
        f"- Client limits: {limits}",
    ]
    return [Paragraph(line) for line in lines]


def _table_metrics() -> list[tuple[type[Metric], str | None]]:
    columns: list[tuple[type[Metric], str | None]] = []
    for metric in Metric.registry.values():
        if issubclass(metric, LatencyMetric) and not metric.open_loop_only:
            columns += [(metric, "p50"), (metric, "p99")]
        elif issubclass(metric, StepMetric) and metric.compared:
            columns.append((metric, None))
    return columns


def _steps_table(results: RunResults) -> Table:
    scaled = any(step.instances for step in results.steps) and bool(results.load.get("scale"))
    columns = _table_metrics()
    header = ["#", "variant", "load", *(["instances"] if scaled else []), "valid", "requests",
              "errors", *(metric.name(point) for metric, point in columns), "in flight",
              "$/M tokens"]  # fmt: skip
    rows = []
    for step in results.steps:
        figures = [
            _fmt(metric.value(step, point), 0 if metric.unit == "tokens/min" else 2)
            for metric, point in columns
        ]
        rows.append(
            [str(step.id), step.variant, step.load_text,
             *([str(step.instances)] if scaled else []),
             "yes" if step.valid else "**no**", str(step.requests), str(step.errors),
             *figures, _fmt(step.achieved_concurrency, 1),
             _fmt(step.cost_per_million_output_tokens, 3)]
        )  # fmt: skip
    return Table(header, rows)


def _goodput_section(results: RunResults) -> list[Block]:
    limits = ", ".join(f"{limit.name} <= {limit.limit_ms:g} ms" for limit in results.slo)
    rows = []
    for step in results.steps:
        good = step.goodput
        if good is None:
            continue
        rows.append(
            [str(step.id), step.variant, step.load_text, "yes" if good.slo_met else "**no**",
             f"{good.requests} of {step.succeeded}", _fmt(good.requests_per_s, 2),
             _fmt(good.output_tokens_per_min, 0), "; ".join(good.misses) or "-"]
        )  # fmt: skip
    return [
        Heading("Goodput"),
        Paragraph(
            f"SLO: {limits}. A step meets it when each limited percentile does; goodput counts "
            "the requests that met every limit on their own (ITL: the mean of the request's gaps)."
        ),
        Table(
            [
                "#",
                "variant",
                "load",
                "SLO met",
                "good requests",
                "good req/s",
                "good tokens/min",
                "missed",
            ],
            rows,
        ),
    ]


def _open_loop_section(steps: Sequence[StepResult]) -> list[Block]:
    def p(step: StepResult, key: str, point: str) -> str:
        figures = step.latency.get(key)
        return _fmt(getattr(figures, point) if figures else None)

    return [
        Paragraph(
            "Open loop: latency from each request's scheduled send time includes any wait in "
            "the client for a free connection; from the actual send it does not."
        ),
        Table(
            ["#", "TTFT p50 / p99 from send", "TTFT p50 / p99 from schedule",
             "E2E p99 from send", "E2E p99 from schedule", "dispatch lag p50 / p99",
             "held by --max-inflight (max ms)"],
            [
                [str(step.id), f"{p(step, 'ttft_ms', 'p50')} / {p(step, 'ttft_ms', 'p99')}",
                 f"{p(step, 'ttft_from_schedule_ms', 'p50')} / "
                 f"{p(step, 'ttft_from_schedule_ms', 'p99')}",
                 p(step, "e2e_ms", "p99"), p(step, "e2e_from_schedule_ms", "p99"),
                 _lag(step),
                 _held(step)]
                for step in steps
            ],
        ),
    ]  # fmt: skip


def _server_section(steps: Sequence[StepResult]) -> list[Block]:
    """What the servers' /metrics said during each step, next to the client's view."""
    from inferfleet.cli.bench.server_metrics import ServerMetric

    rows = [
        [str(step.id), step.variant, step.load_text, ServerMetric.registry[key].label,
         _fmt(figure.mean, 2), _fmt(figure.max, 2), str(figure.samples),
         _fmt(step.achieved_concurrency, 1)]
        for step in steps
        for key, figure in step.server_metrics.items()
        if key in ServerMetric.registry
    ]  # fmt: skip
    if not rows:
        return []
    return [
        Heading("Server metrics"),
        Paragraph(
            "Scraped from the servers' Prometheus /metrics during each measured window, "
            "summed over the servers; the client's in-flight count beside."
        ),
        Table(
            ["#", "variant", "load", "figure", "mean", "max", "scrapes", "client in flight"], rows
        ),
    ]


# A timeline longer than this many minutes is shown every few minutes (results.json has all).
TIMELINE_ROWS = 40
TIMELINE_COLUMNS = ("minute", "req/s", "req/target/min", "in service", "starting", "queued",
                    "in flight", "TTFT p99 ms")  # fmt: skip


def _timeline_section(steps: Sequence[StepResult]) -> list[Block]:
    """Minute by minute of each simulated region: its load, instances and queue."""
    blocks: list[Block] = []
    for step in (step for step in steps if step.timeline):
        stride = -(-len(step.timeline) // TIMELINE_ROWS)
        rows = [
            [f"{point.at_s / 60:g}", _fmt(point.requests_per_s, 2),
             _fmt(point.requests_per_target_per_minute, 1), str(sum(point.in_service.values())),
             str(sum(point.starting.values())), str(point.queued), str(point.in_flight),
             _fmt(point.ttft_p99_ms, 1)]
            for point in step.timeline[::stride]
        ]  # fmt: skip
        blocks += [
            Heading(f"Timeline: step {step.id} ({step.variant})", level=3),
            Table(TIMELINE_COLUMNS, rows),
        ]
    if not blocks:
        return []
    note = "Each minute's end, from the start of the run (the warm-up included)."
    return [Heading("Timeline"), Paragraph(note), *blocks]


def _lag(step: StepResult) -> str:
    lag = step.client.dispatch_lag_ms
    return f"{_fmt(lag.p50, 2)} / {_fmt(lag.p99, 2)}" if lag else "-"


def _held(step: StepResult) -> str:
    waits = step.client.inflight_wait_ms
    return f"{step.client.inflight_waits:,} ({_fmt(waits.max if waits else None)})"


def _comparison_section(results: RunResults) -> list[Block]:
    comparisons = results.comparisons
    if not comparisons:
        return []
    labels = list(comparisons[0].ratios)
    rows = []
    for row in comparisons:
        load = f"{row.load:g}" + (f" ({row.instances} inst.)" if row.instances else "")
        cells = [load, f"{row.variant} vs {row.baseline}", f"{row.valid_pairs}/{row.pairs}"]
        for label in labels:
            ratio = row.ratios[label]
            span = ""
            if row.pairs > 1 and ratio.min is not None:
                span = f" ({_fmt(ratio.min, 2)}..{_fmt(ratio.max, 2)})"
            cells.append(_fmt(ratio.geomean, 3) + span)
        rows.append(cells)
    return [
        Heading("A/B: paired ratios (variant / baseline)"),
        Paragraph(
            "Each ratio compares the two variants of the same load and repeat, run back to "
            "back; the figure is the geometric mean over repeats (min..max in brackets). Below "
            "1 is lower."
        ),
        Table(["load", "variant vs baseline", "valid pairs", *labels], rows),
    ]


def _instance_section(steps: Sequence[StepResult]) -> list[Block]:
    with_rows = [step for step in steps if step.per_instance]
    if not with_rows:
        return [
            Heading("Per instance"),
            Paragraph(
                "The target named no instance (no `X-Inferfleet-Instance` header, no "
                "`instance_id` in its stream)."
            ),
        ]
    out: list[Block] = [Heading("Per instance")]
    for step in with_rows:
        out.append(Paragraph(f"Step {step.id} ({step.variant}, {step.load_text}):"))
        out.append(
            Table(
                [
                    "instance",
                    "requests",
                    "tokens/min",
                    "TTFT p50",
                    "TTFT p99",
                    "E2E p50",
                    "E2E p99",
                ],
                [
                    [
                        row.instance,
                        str(row.requests),
                        _fmt(row.output_tokens_per_min, 0),
                        _fmt(row.ttft_ms.p50),
                        _fmt(row.ttft_ms.p99),
                        _fmt(row.e2e_ms.p50),
                        _fmt(row.e2e_ms.p99),
                    ]
                    for row in step.per_instance
                ],
            )
        )
    return out


def render_report(results: RunResults, plots: Sequence[str]) -> str:
    """report.md."""
    lines: list[str] = []
    in_list = False
    for block in blocks(results, plots):
        item = isinstance(block, Paragraph) and block.text.startswith("- ")
        if in_list and not item:
            lines.append("")
        in_list = item
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            text = f"> {block.text}" if block.banner else block.text
            lines += [text] if item else [text, ""]
        elif isinstance(block, Table):
            lines += [
                "| " + " | ".join(block.header) + " |",
                "|" + "---|" * len(block.header),
                *("| " + " | ".join(row) + " |" for row in block.rows),
                "",
            ]
        else:
            lines += [f"![{block.name}]({block.name})", ""]
    return "\n".join(lines)


HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 78rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f2f2f2; } td:nth-child(-n+2) { text-align: left; }
.banner { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6rem 0.9rem; }
img { max-width: 100%; display: block; margin: 0.8rem 0; }
"""


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def render_html(results: RunResults, plots: Sequence[str], folder: Path) -> str:
    """report.html: the same blocks, the plots inlined, nothing fetched from anywhere."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(results.tool.get('name', 'inferfleet bench'))} report</title>",
        f"<style>{HTML_STYLE}</style></head><body>",
    ]
    for block in blocks(results, plots):
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = ' class="banner"' if block.banner else ""
            parts.append(f"<p{css}>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            data = base64.b64encode((folder / block.name).read_bytes()).decode("ascii")
            parts.append(
                f'<img alt="{html.escape(block.name)}" src="data:image/png;base64,{data}">'
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
