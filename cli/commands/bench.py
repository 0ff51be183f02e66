"""``inferfleet bench``: benchmark a streaming LLM (or classifier) endpoint honestly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inferfleet.cli.errors import UserError

LOAD = "Load"
WORKLOAD = "Workload"
TARGET = "Target"
AB = "A/B"
OUTPUT = "Output"
CLIENT = "Client"


def bench(
    target: Annotated[
        str | None,
        typer.Option(
            help="URL of the server (a SageMaker endpoint name for --api sagemaker).",
            rich_help_panel=TARGET,
        ),
    ] = None,
    api: Annotated[
        str,
        typer.Option(
            help="openai (SSE /v1/completions or /v1/chat/completions), triton (generate_stream), "
            "sagemaker (response stream), classify (JSON).",
            rich_help_panel=TARGET,
        ),
    ] = "openai",
    endpoint: Annotated[
        str, typer.Option(help="openai only: completions or chat.", rich_help_panel=TARGET)
    ] = "completions",
    model: Annotated[
        str | None,
        typer.Option(
            help="Model name to request (default: the server's first or only model).",
            rich_help_panel=TARGET,
        ),
    ] = None,
    target_model: Annotated[
        str | None,
        typer.Option(
            help="sagemaker only: model on a multi-model endpoint.", rich_help_panel=TARGET
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(help="AWS region (sagemaker, --target-group-arn).", rich_help_panel=TARGET),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="sagemaker only: runtime URL override.", rich_help_panel=TARGET),
    ] = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Bring up the local rehearsal (emulated servers behind nginx), run, tear it down.",
            rich_help_panel=TARGET,
        ),
    ] = False,
    servers: Annotated[
        int, typer.Option(help="--local: number of emulated servers.", rich_help_panel=TARGET)
    ] = 5,
    local_mode: Annotated[
        str, typer.Option(help="--local: continuous or static batching.", rich_help_panel=TARGET)
    ] = "continuous",
    regions: Annotated[
        int,
        typer.Option(
            help="--local --scenario: regions of the rehearsal (--servers each).",
            rich_help_panel=TARGET,
        ),
    ] = 1,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="brownout:region=R,at=20s,slowdown=4 (or kill=60%; for=20s): the same load "
            "with the traffic controller on, then static weights.",
            rich_help_panel=TARGET,
        ),
    ] = None,
    control_period: Annotated[
        float | None,
        typer.Option(
            help="--scenario: seconds per traffic-control period (default 2).",
            rich_help_panel=TARGET,
            show_default=False,
        ),
    ] = None,
    users: Annotated[
        str | None,
        typer.Option(
            help="Closed loop: concurrent users per step, e.g. 4,20,40 "
            "(--scenario default: 2 per emulated server).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            help="Open loop: Poisson arrival rates (req/s) per step, e.g. 2,5.",
            rich_help_panel=LOAD,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Measured seconds per step, after warm-up (default 30 unless --requests).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option(help="Measured requests per step (after warm-up).", rich_help_panel=LOAD),
    ] = None,
    warmup: Annotated[
        float, typer.Option(help="Seconds of warm-up per step, not measured.", rich_help_panel=LOAD)
    ] = 2.0,
    prompt_tokens: Annotated[
        str,
        typer.Option(
            help="N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.", rich_help_panel=WORKLOAD
        ),
    ] = "128",
    output_tokens: Annotated[
        str,
        typer.Option(
            help="N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA; requested exactly.",
            rich_help_panel=WORKLOAD,
        ),
    ] = "128",
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="JSONL with a 'prompt' (and optional 'output_tokens') per line.",
            rich_help_panel=WORKLOAD,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of lengths, prompts and arrivals.", rich_help_panel=WORKLOAD)
    ] = 0,
    compare: Annotated[
        str | None,
        typer.Option(
            help="A/B variants, e.g. routing=least_outstanding_requests,random.", rich_help_panel=AB
        ),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            help="Runs of each variant per step, interleaved A B A B.", rich_help_panel=AB
        ),
    ] = 1,
    target_group_arn: Annotated[
        str | None,
        typer.Option(
            help="ALB target group whose algorithm --compare sets (restored after).",
            rich_help_panel=AB,
        ),
    ] = None,
    alb_settle: Annotated[
        float,
        typer.Option(
            help="Seconds to wait after changing the ALB algorithm before measuring.",
            rich_help_panel=AB,
        ),
    ] = 10.0,
    out: Annotated[
        Path,
        typer.Option(
            help="Directory for results.json, requests.csv, report.md and plots.",
            rich_help_panel=OUTPUT,
        ),
    ] = Path("bench-results"),
    price_per_hour: Annotated[
        float | None,
        typer.Option(
            help="Price of one instance per hour, for cost per million output tokens.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    instances: Annotated[
        int | None,
        typer.Option(
            help="Instances serving the target (default with --local: --servers).",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results.json to stdout.", rich_help_panel=OUTPUT)
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            help="Client processes; add some when a step is flagged client-bound.",
            rich_help_panel=CLIENT,
        ),
    ] = 1,
    timeout: Annotated[
        float, typer.Option(help="Seconds one request may take.", rich_help_panel=CLIENT)
    ] = 300.0,
    max_inflight: Annotated[
        int,
        typer.Option(
            help="Open loop: requests on the wire at once; later ones wait in the client.",
            rich_help_panel=CLIENT,
        ),
    ] = 4096,
    max_loop_lag_ms: Annotated[
        float,
        typer.Option(
            help="A step whose client event-loop lag p99 exceeds this is invalid.",
            rich_help_panel=CLIENT,
        ),
    ] = 20.0,
    max_dispatch_lag_ms: Annotated[
        float,
        typer.Option(
            help="An open-loop step whose dispatch lag p99 exceeds this is invalid.",
            rich_help_panel=CLIENT,
        ),
    ] = 20.0,
    max_error_rate: Annotated[
        float,
        typer.Option(
            help="A step where a larger fraction of requests failed has failed "
            "(0: any failed request fails it; 0.01 tolerates 1%).",
            rich_help_panel=LOAD,
        ),
    ] = 0.0,
) -> None:
    """Measure TTFT, inter-token latency, E2E and tokens/min of an endpoint, per load step.

    Closed loop (--users) or open-loop Poisson (--rate); steps where the client
    was the bottleneck are marked invalid. Writes results.json, requests.csv,
    report.md and PNG plots to --out (a new folder, or one bench wrote before).
    Ctrl-C keeps what was measured.

    Exit codes: 0 every step valid; 1 the run could not be carried out (target
    unreachable, an AWS call failed); 2 bad input; 3 a step failed (more requests
    failed than --max-error-rate allows, or none succeeded); 4 a step's figures are
    invalid (the client was the bottleneck, or it hit bench's memory bound);
    130 interrupted (what was measured is saved).
    """
    from pydantic import ValidationError

    from inferfleet.cli.bench.config import BenchConfig, describe_validation_error

    raw = {
        "target": target,
        "api": api,
        "endpoint": endpoint,
        "model": model,
        "target_model": target_model,
        "region": region,
        "endpoint_url": endpoint_url,
        "local": local,
        "servers": servers,
        "local_mode": local_mode,
        "users": users or [],
        "rate": rate or [],
        "duration": duration,
        "requests": requests,
        "warmup": warmup,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "dataset": dataset,
        "seed": seed,
        "compare": compare,
        "repeat": repeat,
        "target_group_arn": target_group_arn,
        "alb_settle": alb_settle,
        "out": out,
        "price_per_hour": price_per_hour,
        "instances": instances,
        "workers": workers,
        "timeout": timeout,
        "max_inflight": max_inflight,
        "max_loop_lag_ms": max_loop_lag_ms,
        "max_dispatch_lag_ms": max_dispatch_lag_ms,
        "max_error_rate": max_error_rate,
    }
    if scenario is None and regions != 1:
        raise UserError("--regions: several regions are rehearsed for a --scenario; add one")
    if scenario is not None and not users and not rate:
        from inferfleet.cli.bench.scenario import default_users

        raw["users"] = str(default_users(servers, regions))
    try:
        config = BenchConfig.model_validate(raw)
    except ValidationError as error:
        raise UserError(describe_validation_error(error)) from None

    if scenario is not None:
        from inferfleet.cli.bench.scenario import build_scenario, run_scenario

        plan = build_scenario(config, regions=regions, scenario=scenario, period_s=control_period)
        outcome = run_scenario(plan)
    else:
        from inferfleet.cli.bench.runner import run_bench

        outcome = run_bench(config)
    if json_output:
        typer.echo(json.dumps(outcome.results, indent=2))
    else:
        steps = outcome.results["steps"]
        invalid = sum(1 for step in steps if not step["valid"])
        requests = sum(step["requests"] for step in steps)
        failed = sum(step["errors"] for step in steps)
        typer.secho(
            f"{len(steps)} step(s) measured, {invalid} invalid; {failed:,} of {requests:,} "
            f"requests failed; results in {config.out}/"
            + (" (partial)" if outcome.results["partial"] else ""),
            err=True,
            fg=typer.colors.RED if outcome.exit_code else None,
        )
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
