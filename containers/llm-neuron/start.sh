#!/usr/bin/env bash
# Check the engine settings, fetch the model from S3 when the task names one
# (INFERFLEET_MODEL_ARTIFACT), then serve it.
set -euo pipefail
cd "$(dirname "$0")"

kind="${INFERFLEET_SERVICE_KIND:-llm}"
if [[ "${kind}" != llm ]]; then
  echo "start: INFERFLEET_SERVICE_KIND=${kind}, but this image serves llm; deploy the intent-neuron image for classifiers" >&2
  exit 1
fi
"${INFERFLEET_PYTHON:-python3}" -m llm_engine.check_env
./fetch_model.sh "${INFERFLEET_MODEL:?set INFERFLEET_MODEL to the model folder}"
exec ./serve.sh "$@"
