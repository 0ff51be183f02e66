"""How a load balancer picks the server for a request: one vocabulary, every spelling.

The fleet file, the constructs, the benchmark and the local rehearsal all say
:class:`Routing`; each balancer's own word for it is a property here, so no other
module keeps a mapping table. ``weighted_random`` (the ALB's word) is accepted as an
alias of ``random``.
"""

from enum import StrEnum


class Routing(StrEnum):
    LEAST_OUTSTANDING_REQUESTS = "least_outstanding_requests"
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"

    @classmethod
    def parse(cls, value: "str | Routing") -> "Routing":
        """The policy named by ``value`` or one of its aliases; ValueError lists the names."""
        text = str(value).strip().lower()
        try:
            return cls(_ALIASES.get(text, text))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a routing policy; use one of {', '.join(cls)}"
                f" (aliases: {', '.join(f'{a} = {t}' for a, t in _ALIASES.items())})"
            ) from None

    @property
    def alb(self) -> str:
        """The ALB target group's ``load_balancing.algorithm.type``."""
        return _ALB[self]

    @property
    def nginx(self) -> str:
        """The nginx upstream directive (empty: nginx's default, round robin)."""
        return _NGINX[self]

    @property
    def sagemaker(self) -> str | None:
        """The SageMaker production variant's ``RoutingStrategy``; None when it has none."""
        return _SAGEMAKER.get(self)

    @classmethod
    def from_alb(cls, algorithm: str) -> "Routing":
        return next(routing for routing, name in _ALB.items() if name == algorithm)


_ALIASES = {
    "weighted_random": Routing.RANDOM.value,
    "least_conn": Routing.LEAST_OUTSTANDING_REQUESTS.value,
}
_ALB = {
    Routing.LEAST_OUTSTANDING_REQUESTS: "least_outstanding_requests",
    Routing.ROUND_ROBIN: "round_robin",
    Routing.RANDOM: "weighted_random",
}
_NGINX = {
    Routing.LEAST_OUTSTANDING_REQUESTS: "least_conn",
    Routing.ROUND_ROBIN: "",
    Routing.RANDOM: "random",
}
_SAGEMAKER = {
    Routing.LEAST_OUTSTANDING_REQUESTS: "LEAST_OUTSTANDING_REQUESTS",
    Routing.RANDOM: "RANDOM",
}
