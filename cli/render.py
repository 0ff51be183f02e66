"""Tables for people; ``--json`` output never goes through here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from inferfleet.infra.stack_limits import MAX_RESOURCES

if TYPE_CHECKING:  # `validate` prints a plan without loading the synth engine
    from inferfleet.cli.synth import SynthReport
    from inferfleet.infra.plan import FleetPlan

stderr_console = Console(stderr=True)


def print_fleet_plan(plan: FleetPlan, *, source: str) -> None:
    console = Console()
    console.print(
        f"[green]valid[/green] {source}: fleet [bold]{plan.name}[/bold], deployed in the "
        f"order {', '.join(plan.deploy_order)} (the first is the canary)"
    )
    table = Table("region", "service", "instance", "TP", "replicas/inst", "replica GiB", "min..max")
    for region in plan.regions:
        for service in region.services:
            for pool in service.pools:
                table.add_row(
                    region.region,
                    service.name,
                    pool.instance_type,
                    str(pool.tensor_parallel),
                    str(pool.replicas_per_instance),
                    f"{pool.replica_need_gib:.1f} of {pool.replica_available_gib:.0f}",
                    f"{pool.min_instances}..{pool.max_instances}",
                )
    console.print(table)
    for region in plan.regions:
        console.print(
            f"{region.region}: stack {region.stack_name}, up to "
            f"{region.resources_upper_bound} of {MAX_RESOURCES} resources"
        )
        if region.personalization is not None:
            queue = region.personalization.queue
            endpoint = region.personalization.endpoint
            if endpoint.components:
                hosting = (
                    f"inference components on {endpoint.instance_type}: base model "
                    f"{endpoint.copy_accelerators} accelerators and {endpoint.copy_memory_mb} MiB "
                    f"per copy, {endpoint.floor}..{endpoint.max_capacity} copies on up to "
                    f"{endpoint.instance_ceiling} instances, one adapter component per user model"
                )
            else:
                hosting = (
                    f"endpoint {endpoint.instance_type} {endpoint.floor}..{endpoint.max_capacity}"
                )
            console.print(
                f"{region.region}: personalization {hosting}, training jobs "
                f"{queue.training_job_prefix}-* on {queue.training_instance_type}"
            )
        for job in region.batch_jobs:
            props = job.props
            console.print(
                f"{region.region}: batch job {job.name}: {props.instance_count} x "
                f"{props.instance_type}, {props.concurrency} requests in flight per instance, "
                f"{props.schedule or 'started by hand'}; {props.input_prefix} -> "
                f"{props.output_prefix}{props.name}-*/",
                highlight=False,
            )
        if region.left_out:
            console.print(
                f"{region.region}: emulator mode leaves out " + "; ".join(region.left_out)
            )
    global_plan = plan.global_plan
    if global_plan is not None:
        props = global_plan.props
        names = ", ".join(
            f"{s.label}.{props.zone_name.rstrip('.')} (worst-case shift "
            f"{props.worst_case_shift_s(s)} s)"
            for s in props.services
        )
        zone = (
            "existing zone"
            if props.hosted_zone_id
            else ("new private zone" if props.private_zone_vpcs else "new public zone")
        )
        console.print(
            f"{global_plan.region}: {global_plan.stack_name}, {props.mode} over "
            f"{', '.join(plan.region_names)} in a {zone}, every {props.period_s} s: {names}"
        )
        if global_plan.left_out:
            console.print(
                f"{global_plan.stack_name}: emulator mode leaves out "
                + "; ".join(global_plan.left_out)
            )
    for warning in plan.warnings:
        located = escape(warning.located(source))
        console.print(f"[yellow]warning[/yellow] {located}", highlight=False)


def print_synth_report(report: SynthReport) -> None:
    console = Console()
    table = Table(
        "stack", "region", "resources", "lint errors", "lint warnings", "nag errors", "acknowledged"
    )
    for stack in report.stacks:
        lint = [f for f in report.lint if f.stack == stack.name]
        prefix = f"/{stack.name}/"
        table.add_row(
            stack.name,
            stack.region,
            str(stack.resources),
            str(sum(f.severity == "error" for f in lint)),
            str(sum(f.severity == "warning" for f in lint)),
            str(sum(f.path.startswith(prefix) for f in report.nag_errors)),
            str(sum(a.path.startswith(prefix) for a in report.acknowledged)),
        )
    console.print(table)
    for finding in report.lint:
        console.print(
            f"[yellow]{finding.rule}[/yellow] {finding.stack}:{finding.line} {finding.message}"
        )
    for finding in report.nag:
        console.print(f"[red]{finding.rule}[/red] {finding.path}: {finding.description}")
    verdict = "[green]passed[/green]" if report.passed else "[red]failed[/red]"
    console.print(f"{verdict}: templates in {report.outdir}")
