"""CDK feature flags of ``cdk init``, shipped with the package.

Every App this project builds (through cdk.json, ``inferfleet synth``, the tests)
gets the same flags, so auto scaling groups come out with launch templates and
both synth paths give the same templates. cdk.json carries a copy for the CDK CLI;
a test keeps the two equal.
"""

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def cdk_feature_flags() -> dict[str, Any]:
    text = resources.files("inferfleet.infra").joinpath("cdk_feature_flags.json").read_text()
    return json.loads(text)
