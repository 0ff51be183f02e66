"""Props of the constructs: frozen, CDK-free, every default documented, and ``problems()``.

Importable without aws_cdk, so ``inferfleet validate`` and the fleet plan check exactly the
rules each construct enforces.
"""
