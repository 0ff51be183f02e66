"""Where a run's files go; read by the summary function, the construct and the CLI."""

SETTINGS_ENV = "BATCH_SUMMARY_SETTINGS"
SUMMARY_NAME = "_SUMMARY.json"
OUTPUT_SUFFIX = ".out"


def run_output_prefix(output_prefix: str, transform_job: str) -> str:
    """Each run writes under its own folder, so runs never overwrite each other."""
    return f"{output_prefix}{transform_job}/"
