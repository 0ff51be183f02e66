"""Props of the :class:`~inferfleet.constructs.neuron_serving_cluster.NeuronServingCluster`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from inferfleet.constructs.props.problems import PropsProblem, cidr_problem, in_range

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip
MAX_AVAILABILITY_ZONES = 6
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class ImportedVpc:
    """An existing VPC, described fully so nothing is looked up at synth.

    Subnets are listed one per zone, in the order of ``availability_zones``.
    """

    vpc_id: str
    cidr: str
    availability_zones: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    public_subnet_ids: tuple[str, ...] = ()

    def problems(self) -> list[PropsProblem]:
        problems = []
        if not _VPC_ID.match(self.vpc_id):
            problems.append(
                PropsProblem("vpc_id", f"{self.vpc_id!r}: use an id like vpc-0abc12345def67890")
            )
        problems += cidr_problem("cidr", self.cidr)
        zones = self.availability_zones
        if len(zones) < 2:
            problems.append(
                PropsProblem(
                    "availability_zones", "list at least two zones (load balancers need two)"
                )
            )
        if len(set(zones)) != len(zones):
            problems.append(PropsProblem("availability_zones", "a zone is listed twice"))
        if not self.private_subnet_ids:
            problems.append(
                PropsProblem(
                    "private_subnet_ids",
                    "an existing VPC needs private subnets for the instances; list one per zone",
                )
            )
        for key in ("private_subnet_ids", "public_subnet_ids"):
            subnets = getattr(self, key)
            bad = [s for s in subnets if not _SUBNET_ID.match(s)]
            if bad:
                problems.append(
                    PropsProblem(key, f"{', '.join(bad)}: use subnet ids like subnet-0abc1234")
                )
            if subnets and len(subnets) != len(zones):
                problems.append(
                    PropsProblem(
                        key,
                        f"{len(subnets)} subnets for {len(zones)} availability zones; give one "
                        "subnet per zone, in the order of availability_zones",
                    )
                )
            if len(set(subnets)) != len(subnets):
                problems.append(PropsProblem(key, "a subnet is listed twice"))
        return problems


@dataclass(frozen=True)
class NeuronServingClusterProps:
    """Network, cluster and shared plumbing of the model services of one stack.

    :param vpc: an existing VPC. Default: a new one over ``max_azs`` zones with public and
        private subnets, ``nat_gateways`` NAT gateways and flow logs to CloudWatch.
    :param vpc_cidr: address range of a new VPC. Default: 10.0.0.0/16.
    :param availability_zones: zones of a new VPC. Default: the first ``max_azs`` zones of
        the stack's region (looked up when the stack has an account).
    :param max_azs: zones of a new VPC when ``availability_zones`` is not given. Default: 3.
    :param nat_gateways: NAT gateways of a new VPC. Default: one per zone.
    :param alarm_emails: addresses subscribed to the alarm topic. Default: none.
    :param access_log_retention_days: load balancer access logs. Default: 90.
    :param compile_cache_retention_days: unused Neuron compile artifacts. Default: 180.
    :param log_retention_days: container and flow logs. Default: 30.
    :param restrict_default_security_group: strip the new VPC's default security group of
        its rules (a Lambda-backed custom resource). Default: True.
    :param dashboard: a CloudWatch dashboard of the services, named after the cluster's
        construct path (``{stack}-{id}-{hash}``). Default: True.
    """

    vpc: ImportedVpc | None = None
    vpc_cidr: str = "10.0.0.0/16"
    availability_zones: tuple[str, ...] | None = None
    max_azs: int = 3
    nat_gateways: int | None = None
    alarm_emails: tuple[str, ...] = ()
    access_log_retention_days: int = 90
    compile_cache_retention_days: int = 180
    log_retention_days: int = 30
    restrict_default_security_group: bool = True
    dashboard: bool = True

    @property
    def cidr(self) -> str:
        return self.vpc.cidr if self.vpc else self.vpc_cidr

    @property
    def has_public_subnets(self) -> bool:
        return self.vpc is None or bool(self.vpc.public_subnet_ids)

    def problems(self) -> list[PropsProblem]:
        problems: list[PropsProblem] = []
        if self.vpc is not None:
            problems += [p.under("vpc") for p in self.vpc.problems()]
            if self.availability_zones is not None:
                problems.append(
                    PropsProblem(
                        "availability_zones",
                        "is for a new VPC; give an existing VPC's zones in vpc.availability_zones",
                    )
                )
            if self.nat_gateways is not None:
                problems.append(
                    PropsProblem("nat_gateways", "applies to a new VPC only; drop it with vpc")
                )
        else:
            problems += cidr_problem("vpc_cidr", self.vpc_cidr)
            zones = self.availability_zones
            if zones is not None:
                problems += in_range("availability_zones", len(zones), 2, MAX_AVAILABILITY_ZONES)
                if len(set(zones)) != len(zones):
                    problems.append(PropsProblem("availability_zones", "a zone is listed twice"))
            problems += in_range("max_azs", self.max_azs, 2, MAX_AVAILABILITY_ZONES)
            if self.nat_gateways is not None:
                problems += in_range("nat_gateways", self.nat_gateways, 0, self.max_azs)
        for index, email in enumerate(self.alarm_emails):
            if not _EMAIL.match(email):
                problems.append(
                    PropsProblem(f"alarm_emails[{index}]", f"{email!r}: use an e-mail address")
                )
        for key in ("access_log_retention_days", "compile_cache_retention_days"):
            if getattr(self, key) < 1:
                problems.append(PropsProblem(key, "keep objects at least one day"))
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            problems.append(
                PropsProblem(
                    "log_retention_days",
                    f"{self.log_retention_days} is not a CloudWatch Logs retention; use one of "
                    + ", ".join(map(str, LOG_RETENTION_DAYS)),
                )
            )
        return problems
