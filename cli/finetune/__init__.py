"""Fine-tune and per-user inference against a deployed stack: submit, status, list, invoke.

Every resource is found from the regional stack's CloudFormation outputs, named by the
constants of the constructs that emit them.
"""
