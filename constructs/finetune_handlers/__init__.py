"""Lambda handlers of the fine-tune queue, shipped as package data next to the construct.

The construct zips this folder as the functions' code (no Docker bundling); the Powertools
public layer supplies ``aws_lambda_powertools`` at run time. Modules import each other
relatively, so the same code runs in Lambda (as ``finetune_handlers.<module>``) and in tests
(as ``inferfleet.constructs.finetune_handlers.<module>``).
"""
