"""SageMaker training entry point: LoRA fine-tunes a causal LM per user, packs a Triton model."""
