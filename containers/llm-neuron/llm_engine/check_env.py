"""Check the engine settings in the environment before the model is fetched.

    python3 -m llm_engine.check_env

Prints the settings on one line, or one line naming each bad variable and exits 1,
so a typo fails the task in seconds instead of after downloading the weights.
"""

from pydantic import ValidationError

from llm_engine.settings import ENV_PREFIX, EngineSettings


def main() -> None:
    try:
        settings = EngineSettings.from_env()
    except ValidationError as error:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(map(str, issue['loc'])).upper()}: {issue['msg']}"
            if issue["loc"]
            else issue["msg"].removeprefix("Value error, ")
            for issue in error.errors()
        )
        raise SystemExit(f"settings: {problems}") from None
    except ValueError as error:  # the serving contract names the variable itself
        raise SystemExit(f"settings: {error}") from None
    print(f"settings: {settings.model_dump_json()}")


if __name__ == "__main__":
    main()
