#!/usr/bin/env bash
# Check the engine settings, fetch the model from S3 when the task names one
# (INFERFLEET_MODEL_ARTIFACT), then serve INFERFLEET_REPLICAS copies of it.
set -euo pipefail
cd "$(dirname "$0")"

kind="${INFERFLEET_SERVICE_KIND:-llm}"
if [[ "${kind}" != llm ]]; then
  echo "start: INFERFLEET_SERVICE_KIND=${kind}, but this image serves llm; deploy the intent-neuron image for classifiers" >&2
  exit 1
fi
"${INFERFLEET_PYTHON:-python3}" -m llm_engine.check_env
./fetch_model.sh "${INFERFLEET_MODEL:?set INFERFLEET_MODEL to the model folder}"

replicas="${INFERFLEET_REPLICAS:-1}"
if ((replicas > 1)); then
  # Triton reads the instance count from the model config only: serve a copy of the
  # repository whose config asks for one instance per replica. The version folder is
  # linked, so the model code still finds llm_engine next to the original.
  original="${INFERFLEET_MODEL_REPOSITORY:-${PWD}/model_repository}"
  repository="$(mktemp -d)"
  mkdir "${repository}/llm"
  ln -s "${original}/llm/1" "${repository}/llm/1"
  sed -E "s/^( *count: )1$/\1${replicas}/" "${original}/llm/config.pbtxt" \
    >"${repository}/llm/config.pbtxt"
  if ! grep -Eq "^ *count: ${replicas}$" "${repository}/llm/config.pbtxt"; then
    echo "start: ${original}/llm/config.pbtxt has no 'count: 1' line to set to ${replicas} replicas" >&2
    exit 1
  fi
  export INFERFLEET_MODEL_REPOSITORY="${repository}"
fi
exec ./serve.sh "$@"
