#!/usr/bin/env bash
# Trace the classifier for the NeuronCores on first start, then serve it.
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -f "${INFERFLEET_INTENT_MODEL_DIR}/manifest.json" ]]; then
  python3 -m intent_classifier.compile \
    --model-dir "${INFERFLEET_INTENT_SOURCE_DIR}" \
    --out "${INFERFLEET_INTENT_MODEL_DIR}" \
    --buckets "${INFERFLEET_INTENT_BUCKETS:-16,32,64,128}" \
    --target "${INFERFLEET_INTENT_TARGET:-neuron}"
fi
exec ./serve.sh "$@"
