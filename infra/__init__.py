"""The CDK app of this repo: the fleet spec and the stacks built from it."""
