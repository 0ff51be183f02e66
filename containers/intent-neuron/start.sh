#!/usr/bin/env bash
# Fetch the model from S3 when the task names one (INFERFLEET_MODEL_ARTIFACT), take its
# traced graphs from the service's compile cache or trace it for the NeuronCores on first
# start, then serve it.
set -euo pipefail
cd "$(dirname "$0")"

kind="${INFERFLEET_SERVICE_KIND:-classifier}"
if [[ "${kind}" != classifier ]]; then
  echo "start: INFERFLEET_SERVICE_KIND=${kind}, but this image serves classifier; deploy the llm-neuron image for LLMs" >&2
  exit 1
fi
source_dir="${INFERFLEET_INTENT_SOURCE_DIR:?set INFERFLEET_INTENT_SOURCE_DIR to the model folder}"
traced_dir="${INFERFLEET_INTENT_MODEL_DIR:?set INFERFLEET_INTENT_MODEL_DIR to the traced graphs folder}"
./fetch_model.sh "${source_dir}"
if [[ ! -f "${traced_dir}/manifest.json" ]] \
  && ! ./traced_cache.sh fetch "${source_dir}" "${traced_dir}"; then
  python3 -m intent_classifier.compile \
    --model-dir "${source_dir}" \
    --out "${traced_dir}" \
    --buckets "${INFERFLEET_INTENT_BUCKETS:-16,32,64,128}" \
    --target "${INFERFLEET_INTENT_TARGET:-neuron}"
  ./traced_cache.sh store "${source_dir}" "${traced_dir}"
fi
exec ./serve.sh "$@"
