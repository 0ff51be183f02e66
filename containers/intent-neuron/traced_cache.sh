#!/usr/bin/env bash
# Share traced graphs between the tasks of a service through INFERFLEET_COMPILE_CACHE_URL
# (s3://bucket/prefix/), so only the first task to start with a model traces it; on
# Neuron that takes minutes per sequence bucket.
#
#   traced_cache.sh fetch SOURCE_DIR TRACED_DIR   exit 0: the graphs came from the cache
#   traced_cache.sh store SOURCE_DIR TRACED_DIR
#
# The key names everything the graphs depend on: the model's files, the buckets, the
# trace target, the instance family and the versions of torch and the Neuron compiler.
# The cache only saves time: when it is unset or unreachable, the task traces (fetch
# exits 1) or keeps its graphs to itself (store warns), and serves either way.
set -euo pipefail

[[ $# -eq 3 && ("$1" == fetch || "$1" == store) ]] \
  || { echo "usage: traced_cache.sh fetch|store SOURCE_DIR TRACED_DIR" >&2; exit 2; }
action="$1"
source_dir="$2"
traced_dir="$3"
cache="${INFERFLEET_COMPILE_CACHE_URL:-}"
if [[ -z "${cache}" ]]; then
  # Nothing to share through: a fetch finds nothing, a store has nothing to do.
  if [[ "${action}" == fetch ]]; then
    exit 1
  fi
  exit 0
fi

warn() {
  echo "traced_cache: $*" >&2
}

# What the CLI printed, on one line and cut short.
reason() {
  head -c 300 "$1" | tr -s '[:space:]' ' '
}

cache_key() {
  local model versions family
  model="$(cd "${source_dir}" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum)"
  versions="$("${INFERFLEET_PYTHON:-python3}" - <<'PYTHON'
import importlib.metadata

for name in ("torch", "torch-neuronx", "neuronx-cc"):
    try:
        print(name, importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        pass
PYTHON
)"
  family="${INFERFLEET_INSTANCE_TYPE:-unknown}"
  printf '%s\n' "${model}" "${versions}" \
    "buckets ${INFERFLEET_INTENT_BUCKETS:-16,32,64,128}" \
    "target ${INFERFLEET_INTENT_TARGET:-neuron}" \
    "family ${family%%.*}" \
    | sha256sum | cut -c1-32
}

location="${cache%/}/intent-traced/$(cache_key)/"
errors="$(mktemp)"
trap 'rm -f "${errors}"' EXIT

if [[ "${action}" == fetch ]]; then
  # The manifest is stored last, so a cache entry without it is still being written.
  if ! aws s3 ls "${location}manifest.json" >/dev/null 2>"${errors}"; then
    [[ -s "${errors}" ]] && warn "cannot read ${location}, tracing here: $(reason "${errors}")"
    exit 1
  fi
  if ! aws s3 sync --only-show-errors "${location}" "${traced_dir}" 2>"${errors}"; then
    warn "fetching ${location} failed, tracing here: $(reason "${errors}")"
    rm -f "${traced_dir}/manifest.json"
    exit 1
  fi
  echo "traced_cache: traced graphs from ${location}"
  exit 0
fi

if aws s3 sync --only-show-errors --exclude manifest.json "${traced_dir}" "${location}" \
  2>"${errors}" \
  && aws s3 cp --only-show-errors "${traced_dir}/manifest.json" "${location}manifest.json" \
    2>>"${errors}"; then
  echo "traced_cache: traced graphs stored in ${location}"
else
  warn "storing in ${location} failed; other tasks will trace for themselves: $(reason "${errors}")"
fi
