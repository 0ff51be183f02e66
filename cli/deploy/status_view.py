"""``inferfleet status`` as a table for people; ``--json`` never goes through here."""

from rich.console import Console
from rich.table import Table

from inferfleet.cli.deploy.status import RegionStatus


def print_status(fleet: str, statuses: list[RegionStatus]) -> None:
    console = Console()
    table = Table("region", "stack", "service", "tasks", "targets", title=f"fleet {fleet}")
    for status in statuses:
        running = sum(task.running for task in status.tasks)
        desired = sum(task.desired for task in status.tasks)
        tasks = f"{running}/{desired} running" if status.tasks else "-"
        for name, service in status.services.items() or [("-", None)]:
            targets = (
                " ".join(f"{n} {state}" for state, n in service.targets.items()) or "none"
                if service
                else "-"
            )
            table.add_row(status.region, status.stack_status, name, tasks, targets)
    console.print(table)
    for status in statuses:
        for name, service in status.services.items():
            if service.endpoint:
                console.print(f"{status.region} {name}: {service.endpoint}", soft_wrap=True)
        if status.error:
            console.print(f"[yellow]{status.region}: could not read everything: {status.error}")
