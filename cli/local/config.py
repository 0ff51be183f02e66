"""What a local fleet is made of: servers, routing policy and the servers' profile."""

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inferfleet.cli.errors import UserError, pydantic_problem
from inferfleet.cli.sizing.profile import Batching, ServerProfile
from inferfleet.constructs.routing import Routing
from inferfleet.containers.common.serving_env import ServingProtocol

DEFAULT_MODEL = "emulated-llm"


class LocalFleetConfig(BaseModel):
    """A local fleet: ``servers`` emulators behind one nginx on 127.0.0.1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: int = Field(default=5, ge=1, le=64, description="Emulated servers.")
    routing: Routing = Field(
        default=Routing.LEAST_OUTSTANDING_REQUESTS, description="nginx upstream policy."
    )
    profile: ServerProfile = Field(
        default_factory=ServerProfile, description="Batching and timing of every server."
    )
    model: str = Field(default=DEFAULT_MODEL, min_length=1, description="Served model name.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="nginx port; None picks a free one."
    )
    nginx_workers: int = Field(default=1, ge=1, le=64, description="nginx worker processes.")
    protocol: ServingProtocol = Field(
        default="http",
        description="grpc: every server also serves Triton's gRPC ModelStreamInfer, and nginx "
        "grpc_pass-es a gRPC front to them.",
    )

    _routing = field_validator("routing", mode="before")(
        lambda value: Routing.parse(value) if isinstance(value, str) else value
    )

    @property
    def mode(self) -> Batching:
        """Batching of every server, as the profile says."""
        return self.profile.batching


def check_routing(routing: str) -> Routing:
    try:
        return Routing.parse(routing)
    except ValueError as error:
        raise UserError(f"routing: {error}") from None


def build_config(*, flag_style: bool = False, **fields: object) -> LocalFleetConfig:
    """Validate fields into a config, turning the first problem into a ``UserError``.

    ``flag_style`` names the field as a command-line flag (``--servers``).
    """
    try:
        return LocalFleetConfig.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        if flag_style:
            where = "--" + where.replace("_", "-")
        raise UserError(f"{where}: {pydantic_problem(first)}") from None
