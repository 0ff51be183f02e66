"""Paths of the build contexts and helpers shared by the container tests."""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
LLM_CONTEXT = CONTAINERS / "llm-neuron"
INTENT_CONTEXT = CONTAINERS / "intent-neuron"
FINETUNE_CONTEXT = CONTAINERS / "finetune"
PAIR_CONTEXT = CONTAINERS / "pair-neuron"
COMMON = CONTAINERS / "common"
INTENT_LABELS = ["search", "product_question", "order_status", "chitchat"]


def put_contexts_on_path() -> None:
    """Import image code the way the images do: from the root of each build context."""
    # In the images serving_env.py sits next to each image's packages (copied from common/).
    for context in (LLM_CONTEXT, INTENT_CONTEXT, FINETUNE_CONTEXT, PAIR_CONTEXT, COMMON):
        if str(context) not in sys.path:
            sys.path.insert(0, str(context))


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: str
    workdir: str


def dockerfile_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            if pending.strip():
                keyword, _, arguments = pending.strip().partition(" ")
                logical.append((keyword.upper(), arguments.strip()))
            pending = ""
    return logical


def context_copies(dockerfile: Path) -> list[Copy]:
    """The COPY instructions that take files from the build context, with their WORKDIR."""
    copies, workdir = [], "/"
    for keyword, arguments in dockerfile_instructions(dockerfile):
        if keyword == "WORKDIR":
            workdir = arguments
        elif keyword == "COPY":
            words = [word for word in arguments.split() if not word.startswith("--chown")]
            if any(word.startswith("--from") for word in words):
                continue
            copies.append(Copy(tuple(words[:-1]), words[-1], workdir))
    return copies


def image_tree(context: Path, parent: Path) -> Path:
    """Lay out what the Dockerfile copies into its WORKDIR, and nothing else; returns that root.

    Servers started from this tree prove the image holds every file the code needs.
    """
    copies = context_copies(context / "Dockerfile")
    workdirs = {copy.workdir for copy in copies}
    assert len(workdirs) == 1, f"{context.name}: expected one WORKDIR for COPY, got {workdirs}"
    root = parent / context.name
    root.mkdir(parents=True)
    for copy in copies:
        for source in copy.sources:
            origin = CONTAINERS / source  # every image builds from containers/
            target = root / copy.destination
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    target,
                    ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True,
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
    return root


def run_bench(out: Path, *arguments: str) -> dict:
    """Run the real ``inferfleet bench`` CLI with ``--out out``; return its results.json.

    The client's lag limits are relaxed: these tests check the servers' answers, and a
    busy 2-core box must not turn their steps invalid.
    """
    lenient = ("--max-loop-lag-ms", "1000", "--max-dispatch-lag-ms", "1000")
    command = [str(Path(sys.executable).parent / "inferfleet"), "bench", *arguments, *lenient]
    completed = subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((out / "results.json").read_text())
