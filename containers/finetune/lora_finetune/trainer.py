"""The LoRA training loop: base weights frozen, low-rank adapters on the attention projections.

On Trainium the loop runs on the XLA device (``torch_xla``); elsewhere on CPU or CUDA.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lora_finetune.data import IGNORED, DataError, Example, collate, tokenize
from lora_finetune.settings import FineTuneSettings


class TimeBudgetExceeded(RuntimeError):
    """A batch task trained past its share of the job's run time."""


@dataclass(frozen=True)
class TrainingResult:
    steps: int
    losses: list[float]


def training_device() -> tuple[torch.device, Callable[[], None]]:
    """The device to train on and the call that ends one lazily traced step there."""
    try:
        import torch_xla.core.xla_model as xm
    except ImportError:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return device, lambda: None
    return xm.xla_device(), xm.mark_step


def fine_tune(
    settings: FineTuneSettings,
    base_model: str,
    examples: list[Example],
    adapter_dir: Path,
    *,
    max_runtime_s: float | None = None,
) -> TrainingResult:
    """Train an adapter on ``examples`` and save it (adapter weights only) to ``adapter_dir``.

    ``max_runtime_s`` bounds the training loop, so one batch task cannot use up the time of
    the tasks after it on the same instance.
    """
    started = time.monotonic()
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = [tokenize(tokenizer, example, settings.max_seq_len) for example in examples]
    rows = [row for row in rows if any(label != IGNORED for label in row[1][1:])]
    if not rows:
        raise DataError("no example has completion tokens within max_seq_len")

    device, end_step = training_device()
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            task_type="CAUSAL_LM",
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
        ),
    ).to(device)
    optimizer = torch.optim.AdamW(
        [parameter for parameter in model.parameters() if parameter.requires_grad], lr=settings.lr
    )
    model.train()
    shuffler = random.Random(settings.seed)
    steps, losses = 0, []
    for _ in range(settings.epochs):
        order = list(range(len(rows)))
        shuffler.shuffle(order)
        for start in range(0, len(order), settings.batch_size):
            batch = collate([rows[i] for i in order[start : start + settings.batch_size]], pad_id)
            loss = model(**{name: tensor.to(device) for name, tensor in batch.items()}).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            end_step()
            losses.append(float(loss.detach().cpu()))
            steps += 1
            if max_runtime_s is not None and time.monotonic() - started > max_runtime_s:
                raise TimeBudgetExceeded(
                    f"training ran past its {max_runtime_s:g} s after {steps} steps; ask for "
                    "fewer epochs or steps, or upload less data"
                )
            if settings.max_steps and steps >= settings.max_steps:
                break
        if settings.max_steps and steps >= settings.max_steps:
            break
    model.to("cpu").save_pretrained(adapter_dir)
    return TrainingResult(steps=steps, losses=losses)
