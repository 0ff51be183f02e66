"""Names the CLI and the stacks agree on, so nothing re-parses templates to find them."""


def regional_stack_name(fleet_name: str, region: str) -> str:
    """CloudFormation stack name of one region of a fleet, e.g. ``shopping-assistant-us-east-1``."""
    return f"{fleet_name}-{region}"


def output_key(service: str, what: str) -> str:
    """CloudFormation output key of one service's value, e.g. ``AssistantEndpoint``."""
    return "".join(part.capitalize() for part in service.split("-")) + what
