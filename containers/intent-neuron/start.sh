#!/usr/bin/env bash
# Fetch the model from S3 when the task names one (INFERFLEET_MODEL_ARTIFACT), trace it
# for the NeuronCores on first start, then serve it.
set -euo pipefail
cd "$(dirname "$0")"

kind="${INFERFLEET_SERVICE_KIND:-classifier}"
if [[ "${kind}" != classifier ]]; then
  echo "start: INFERFLEET_SERVICE_KIND=${kind}, but this image serves classifier; deploy the llm-neuron image for LLMs" >&2
  exit 1
fi
./fetch_model.sh "${INFERFLEET_INTENT_SOURCE_DIR:?set INFERFLEET_INTENT_SOURCE_DIR to the model folder}"
if [[ ! -f "${INFERFLEET_INTENT_MODEL_DIR}/manifest.json" ]]; then
  python3 -m intent_classifier.compile \
    --model-dir "${INFERFLEET_INTENT_SOURCE_DIR}" \
    --out "${INFERFLEET_INTENT_MODEL_DIR}" \
    --buckets "${INFERFLEET_INTENT_BUCKETS:-16,32,64,128}" \
    --target "${INFERFLEET_INTENT_TARGET:-neuron}"
fi
exec ./serve.sh "$@"
