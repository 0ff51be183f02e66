"""What is wrong with a construct's props, said once for the construct and the fleet file.

Every props class has ``problems()``: a list of :class:`PropsProblem`, each naming the field
(``pools[1].tensor_parallel``) and saying the fix. A construct raises :class:`PropsError` with
its path when the list is not empty; ``inferfleet validate`` maps each field back to the line
of the fleet file it came from. One list of rules, so the two cannot disagree. Some props also
have ``warnings()``, in the same form: accepted, but worth a second look (a load balancer
serving plaintext to the internet); the construct adds each as a CDK warning and ``validate``
prints them with their lines.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PropsProblem:
    """``field`` is dotted within the props (``pools[0].min_capacity``); '' for the whole."""

    field: str
    message: str

    def under(self, parent: str) -> PropsProblem:
        """The same problem seen from a props object that holds this one at ``parent``."""
        joined = parent if not self.field else f"{parent}{_join(self.field)}"
        return PropsProblem(joined, self.message)


def _join(field: str) -> str:
    return field if field.startswith("[") else f".{field}"


class PropsError(ValueError):
    """A construct was given props it cannot build; lists every problem with the path."""

    def __init__(self, construct_path: str, problems: Iterable[PropsProblem]) -> None:
        self.construct_path = construct_path
        self.problems = list(problems)
        lines = [f"{p.field}: {p.message}" if p.field else p.message for p in self.problems]
        super().__init__(f"{construct_path}: " + "; ".join(lines))


def raise_for(construct_path: str, problems: list[PropsProblem]) -> None:
    if problems:
        raise PropsError(construct_path, problems)


def in_range(
    field: str, value: float, low: float, high: float, unit: str = ""
) -> list[PropsProblem]:
    if low <= value <= high:
        return []
    suffix = f" {unit}" if unit else ""
    return [
        PropsProblem(
            field, f"{value:g}{suffix} is outside {low:g}..{high:g}{suffix}; use a value in it"
        )
    ]


def cidr_problem(field: str, cidr: str) -> list[PropsProblem]:
    try:
        ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as error:
        return [
            PropsProblem(
                field, f"{cidr!r} is not an IPv4 CIDR block ({error}); use one like 10.0.0.0/16"
            )
        ]
    return []


def cidr_problems(field: str, cidrs: Iterable[str]) -> list[PropsProblem]:
    return [
        problem
        for index, cidr in enumerate(cidrs)
        for problem in cidr_problem(f"{field}[{index}]", cidr)
    ]


def collapsed_cidrs(cidrs: Iterable[str]) -> tuple[str, ...]:
    """The fewest blocks covering the same addresses: ``0.0.0.0/1`` and ``128.0.0.0/1`` are
    ``0.0.0.0/0``. Only for CIDRs :func:`cidr_problems` accepts."""
    networks = [ipaddress.IPv4Network(cidr, strict=True) for cidr in cidrs]
    return tuple(str(network) for network in ipaddress.collapse_addresses(networks))


def covers_the_internet(cidrs: Iterable[str]) -> bool:
    """True when the blocks together reach every IPv4 address, however they are split."""
    return collapsed_cidrs(cidrs) == (ANYWHERE,)


ANYWHERE = "0.0.0.0/0"
