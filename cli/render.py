"""Tables for people; ``--json`` output never goes through here."""

from rich.console import Console
from rich.table import Table

from inferfleet.infra.plan import FleetPlan

stderr_console = Console(stderr=True)


def print_fleet_plan(plan: FleetPlan, *, source: str) -> None:
    console = Console()
    console.print(
        f"[green]valid[/green] {source}: fleet [bold]{plan.name}[/bold], "
        f"regions {', '.join(plan.regions)} (first is the canary)"
    )
    table = Table("service", "instance", "TP", "replicas/inst", "replica GiB", "min..max")
    for pool in plan.pools:
        table.add_row(
            pool.service,
            pool.instance_type,
            str(pool.tensor_parallel),
            str(pool.replicas_per_instance),
            f"{pool.replica_need_gib:.1f} of {pool.replica_available_gib:.0f}",
            f"{pool.min_instances}..{pool.max_instances}",
        )
    console.print(table)
