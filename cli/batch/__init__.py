"""Batch inference: start and follow deployed jobs, or run one here the way SageMaker would."""
