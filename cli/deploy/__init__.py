"""Region-by-region rollout through the pinned CDK CLI, with waits, smoke requests and
JSON-lines events."""
