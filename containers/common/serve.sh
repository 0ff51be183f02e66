#!/usr/bin/env bash
# Start the Triton server shipped in the nvidia-pytriton wheel with the Python
# backend stub built for this image's Python. The stub links a shared
# libpython, so the interpreter's library folder goes on LD_LIBRARY_PATH.
# Extra arguments are passed to tritonserver.
set -euo pipefail

python="${INFERFLEET_PYTHON:-python3}"
read -r distribution libdir version < <("${python}" - <<'PYTHON'
import pathlib
import sys
import sysconfig

import pytriton

server = pathlib.Path(pytriton.__file__).parent / "tritonserver"
print(server, sysconfig.get_config_var("LIBDIR"), f"{sys.version_info.major}.{sys.version_info.minor}")
PYTHON
)

backends="${INFERFLEET_TRITON_BACKENDS:-/tmp/triton-backends}"
rm -rf "${backends}"
cp -r "${distribution}/backends" "${backends}"
cp "${distribution}/python_backend_stubs/${version}/triton_python_backend_stub" "${backends}/python/"

export LD_LIBRARY_PATH="${libdir}:${distribution}/../../nvidia_pytriton.libs${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
python_bin="$(dirname "$(command -v "${python}")")"
export PATH="${python_bin}:${PATH}"

exec "${distribution}/bin/tritonserver" \
  --model-repository="${INFERFLEET_MODEL_REPOSITORY:-$(dirname "$0")/model_repository}" \
  --backend-directory="${backends}" \
  --cache-directory="${distribution}/caches" \
  --http-port="${INFERFLEET_HTTP_PORT:-8000}" \
  --grpc-port="${INFERFLEET_GRPC_PORT:-8001}" \
  --metrics-port="${INFERFLEET_METRICS_PORT:-8002}" \
  --strict-readiness=true \
  "$@"
