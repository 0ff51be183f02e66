"""The files an image holds, laid out from its Dockerfile's COPY lines without Docker.

Servers started from such a tree (tests, benchmarks, ``serve_local``) prove the image holds
every file its code needs, and run the code where the image would put it.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

CONTAINERS = Path(__file__).resolve().parent


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
    if len(workdirs) != 1:
        raise ValueError(f"{context.name}: expected one WORKDIR for COPY, got {workdirs}")
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
