"""The artifact a multi-model endpoint loads: a one-model Triton repository, gzipped.

    llm/config.pbtxt
    llm/1/model.py        loads the base model, applies the adapter, generates
    llm/1/adapter/        peft adapter (a few MB, not a copy of the base)
    llm/1/inferfleet.json what was trained, on which base, with which loss

The publisher stores each version as ``{user_id}/{model_id}/{job_id}.tar.gz`` under the
endpoint's model prefix; the serving image provides the base weights (``INFERFLEET_BASE_MODEL``).
"""

import json
import shutil
import tarfile
from pathlib import Path

SERVING_TEMPLATE = Path(__file__).parent / "serving"
METADATA_FILE = "inferfleet.json"
# The Triton model's name inside every artifact; the endpoint picks the artifact, not the name.
MODEL_NAME = "llm"


def write_model_repository(root: Path, adapter_dir: Path, metadata: dict[str, object]) -> Path:
    """Lay out ``root/llm``; returns that folder."""
    model_name = MODEL_NAME
    model_dir = root / model_name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    config = (SERVING_TEMPLATE / "config.pbtxt").read_text()
    (model_dir / "config.pbtxt").write_text(f'name: "{model_name}"\n{config}')
    shutil.copy(SERVING_TEMPLATE / "1" / "model.py", version_dir / "model.py")
    shutil.copytree(adapter_dir, version_dir / "adapter", dirs_exist_ok=True)
    (version_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    return model_dir


def pack(model_dir: Path, archive: Path) -> Path:
    """Gzip ``model_dir`` with its name as the archive's only top-level entry."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(model_dir, arcname=model_dir.name)
    return archive
