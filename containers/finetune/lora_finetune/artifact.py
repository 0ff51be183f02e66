"""What a job leaves for the endpoint, gzipped.

For a multi-model endpoint, a one-model Triton repository:

    llm/config.pbtxt
    llm/1/model.py        loads the base model, applies the adapter, generates
    llm/1/adapter/        peft adapter (a few MB, not a copy of the base)
    llm/1/inferfleet.json what was trained, on which base, with which loss

For an adapter inference component (hyperparameter ``inferfleet_artifact=adapter``), the
adapter alone, at the archive's top: ``adapter_config.json``, its weights, ``inferfleet.json``.

The publisher stores each version as ``{user_id}/{model_id}/{job_id}.tar.gz`` under the
endpoint's model prefix; the serving side provides the base weights (``INFERFLEET_BASE_MODEL``).
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


def write_adapter_artifact(root: Path, adapter_dir: Path, metadata: dict[str, object]) -> Path:
    """Lay the adapter and its metadata out at ``root``; returns ``root``."""
    shutil.copytree(adapter_dir, root, dirs_exist_ok=True)
    (root / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    return root


def pack(folder: Path, archive: Path, *, as_folder: bool = True) -> Path:
    """Gzip ``folder``: as the archive's only top-level entry, or its contents at the top."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as packed:
        if as_folder:
            packed.add(folder, arcname=folder.name)
        else:
            for child in sorted(folder.iterdir()):
                packed.add(child, arcname=child.name)
    return archive
