#!/usr/bin/env bash
# Download every object under INFERFLEET_MODEL_ARTIFACT (s3://bucket/prefix/) into the
# folder given as the only argument, before the server reads it. Without the variable
# (unset or empty) the model baked into the image is used and nothing is fetched.
#
# Objects already in the folder with the same size are kept, so a container restarted
# after a crash does not fetch tens of GiB again; publish each model version under its
# own prefix. The AWS CLI writes each object under a temporary name and renames it when
# complete, so an interrupted download never leaves a truncated file behind.
#
# INFERFLEET_S3_CONCURRENCY (default 64) objects or parts are fetched in parallel, in
# parts of INFERFLEET_S3_PART_SIZE (default 64MB).
set -euo pipefail

fail() {
  echo "fetch_model: $*" >&2
  exit 1
}

[[ $# -eq 1 ]] || fail "usage: fetch_model.sh MODEL_DIR"
artifact="${INFERFLEET_MODEL_ARTIFACT:-}"
model_dir="$1"
[[ -n "${artifact}" ]] || exit 0
[[ "${artifact}" =~ ^s3://[^/]+ ]] \
  || fail "INFERFLEET_MODEL_ARTIFACT=${artifact} is not an S3 URI; give s3://bucket/prefix/"
[[ "${model_dir}" == /* ]] \
  || fail "model folder ${model_dir} must be an absolute path to download ${artifact} into"
artifact="${artifact%/}/"

# The first error the CLI printed, on one line, and how many lines followed it.
first_error() {
  local lines
  lines="$(grep -c . "$1" || true)"
  if ((lines == 0)); then
    echo "the AWS CLI printed no reason"
    return
  fi
  grep -m 1 . "$1" | tr -s '[:space:]' ' ' | sed -e 's/^ //' -e 's/ $//'
  if ((lines > 1)); then
    echo " (+$((lines - 1)) more)"
  fi
}

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

# Transfer settings go into a copy of the active config, so profiles and regions set
# there still apply; the CLI reads them from no environment variable.
config="${AWS_CONFIG_FILE:-${HOME:-/nonexistent}/.aws/config}"
if [[ -r "${config}" ]]; then
  cp "${config}" "${work}/config"
fi
export AWS_CONFIG_FILE="${work}/config"
aws configure set s3.max_concurrent_requests "${INFERFLEET_S3_CONCURRENCY:-64}"
aws configure set s3.multipart_chunksize "${INFERFLEET_S3_PART_SIZE:-64MB}"

# `aws s3 ls` exits 1 with nothing on stderr when the prefix holds no object.
if ! aws s3 ls "${artifact}" >/dev/null 2>"${work}/list-errors"; then
  if [[ -s "${work}/list-errors" ]]; then
    fail "cannot read ${artifact}: $(first_error "${work}/list-errors")"
  fi
  fail "${artifact} holds no objects; upload the model there or fix INFERFLEET_MODEL_ARTIFACT"
fi

mkdir -p "${model_dir}" 2>"${work}/mkdir-errors" \
  || fail "cannot create ${model_dir}: $(first_error "${work}/mkdir-errors")"
started=${SECONDS}
if ! aws s3 sync --only-show-errors --size-only "${artifact}" "${model_dir}" \
  2>"${work}/sync-errors"; then
  fail "downloading ${artifact} into ${model_dir} failed: $(first_error "${work}/sync-errors")"
fi
echo "fetch_model: ${artifact} is in ${model_dir} ($((SECONDS - started)) s)"
