"""What the scorer reads from its environment, with the image's defaults.

SageMaker unpacks the model artifact into ``/opt/ml/model``. When that folder already
holds traced graphs (``manifest.json``), they are used as they are; otherwise the encoder
in it is traced into ``INFERFLEET_PAIR_TRACED_DIR`` at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pair_scorer.buckets import DEFAULT_BUCKETS, parse_buckets
from pair_scorer.compile import DEFAULT_BATCH_SIZE, TARGETS


class SettingsError(ValueError):
    """A variable is malformed; the message names it and the fix."""


@dataclass(frozen=True)
class ScorerSettings:
    """
    :param model_dir: encoder folder, or traced graphs. ``INFERFLEET_PAIR_MODEL_DIR``,
        default ``/opt/ml/model`` (where SageMaker puts the artifact).
    :param traced_dir: where an untraced model is traced to. ``INFERFLEET_PAIR_TRACED_DIR``,
        default ``/tmp/pair-traced``.
    :param target: ``neuron`` or ``cpu``. ``INFERFLEET_PAIR_TARGET``, default ``neuron``.
    :param buckets: sequence lengths traced. ``INFERFLEET_PAIR_BUCKETS``, default
        ``16,32,64,128``.
    :param batch_size: rows per graph call. ``INFERFLEET_PAIR_BATCH_SIZE``, default 8.
    :param copies: model copies, one worker process each; on Neuron, copy ``i`` runs on
        NeuronCore ``i``. ``INFERFLEET_NEURON_CORES``, default 1.
    :param threads: torch threads per copy. ``INFERFLEET_PAIR_THREADS``, default 1.
    """

    model_dir: Path = Path("/opt/ml/model")
    traced_dir: Path = Path("/tmp/pair-traced")
    target: str = "neuron"
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    batch_size: int = DEFAULT_BATCH_SIZE
    copies: int = 1
    threads: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ScorerSettings:
        def read(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        def whole(name: str, default: int) -> int:
            text = read(name)
            if text is None:
                return default
            if not text.isdigit() or int(text) < 1:
                raise SettingsError(f"{name}={text!r}: use a whole number of at least 1")
            return int(text)

        target = read("INFERFLEET_PAIR_TARGET") or cls.target
        if target not in TARGETS:
            raise SettingsError(f"INFERFLEET_PAIR_TARGET={target!r}: use one of neuron, cpu")
        buckets_text = read("INFERFLEET_PAIR_BUCKETS")
        try:
            buckets = parse_buckets(buckets_text) if buckets_text else cls.buckets
        except ValueError as error:
            raise SettingsError(f"INFERFLEET_PAIR_BUCKETS: {error}") from None
        return cls(
            model_dir=Path(read("INFERFLEET_PAIR_MODEL_DIR") or cls.model_dir),
            traced_dir=Path(read("INFERFLEET_PAIR_TRACED_DIR") or cls.traced_dir),
            target=target,
            buckets=buckets,
            batch_size=whole("INFERFLEET_PAIR_BATCH_SIZE", cls.batch_size),
            copies=whole("INFERFLEET_NEURON_CORES", cls.copies),
            threads=whole("INFERFLEET_PAIR_THREADS", cls.threads),
        )
