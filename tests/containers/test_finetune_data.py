"""Fine-tune inputs: JSON Lines parsing, completion-only labels, padding, host placement."""

import json
from pathlib import Path

import pytest
from lora_finetune.data import IGNORED, DataError, Example, collate, read_examples, tokenize
from lora_finetune.sagemaker_env import HostPlacement, SageMakerPaths, host_placement
from lora_finetune.settings import FineTuneSettings, base_model
from lora_finetune.train import tasks_for_host
from pydantic import ValidationError
from transformers import AutoTokenizer


def test_reads_prompt_completion_and_text_lines(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        '{"prompt": "Q: tent?", "completion": " A: yes"}\n\n{"text": "free text"}\n'
    )
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.jsonl").write_text('{"completion": "only answer"}\n')
    (tmp_path / "notes.txt").write_text("ignored")
    assert read_examples(tmp_path) == [
        Example("Q: tent?", " A: yes"),
        Example("", "free text"),
        Example("", "only answer"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"data\.jsonl:2: not JSON"),
        ('{"prompt": "p"}', r"data\.jsonl:2: needs 'text'"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "data.jsonl").write_text('{"text": "fine"}\n' + line + "\n")
    with pytest.raises(DataError, match=message):
        read_examples(tmp_path)


def test_a_folder_without_jsonl_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no \.jsonl files"):
        read_examples(tmp_path)


def test_only_completion_tokens_carry_labels(tiny_lm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    ids, labels = tokenize(tokenizer, Example("which tent", "the green one"), max_seq_len=64)
    prompt_length = len(tokenizer("which tent", add_special_tokens=False).input_ids)
    assert labels[:prompt_length] == [IGNORED] * prompt_length
    assert labels[prompt_length:] == ids[prompt_length:]
    assert len(tokenize(tokenizer, Example("which tent", "the green one"), max_seq_len=3)[0]) == 3


def test_collate_pads_and_masks() -> None:
    batch = collate([([5, 6, 7], [IGNORED, 6, 7]), ([8], [8])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORED, 6, 7], [8, IGNORED, IGNORED]]


def test_hyperparameters_arrive_as_strings() -> None:
    settings = FineTuneSettings.from_hyperparameters({"epochs": "3", "lr": "0.0001", "x": "y"})
    assert (settings.epochs, settings.lr) == (3, 1e-4)
    with pytest.raises(ValidationError, match="lr"):
        FineTuneSettings.from_hyperparameters({"lr": "0"})


def test_the_base_model_is_the_images_whatever_the_hyperparameters_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFERFLEET_BASE_MODEL", "/opt/models/base-7b")
    settings = FineTuneSettings.from_hyperparameters({"base_model": "s3://attacker/model"})
    assert "base_model" not in settings.model_dump()
    assert base_model() == "/opt/models/base-7b"
    monkeypatch.delenv("INFERFLEET_BASE_MODEL")
    with pytest.raises(RuntimeError, match="INFERFLEET_BASE_MODEL is not set"):
        base_model()


def test_each_host_takes_every_nth_task(tmp_path: Path) -> None:
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]})
    )
    placement = host_placement(SageMakerPaths(tmp_path))
    assert placement == HostPlacement(index=1, count=3)
    tasks = [{"index": index} for index in range(7)]
    assert [task["index"] for task in tasks_for_host(tasks, placement)] == [1, 4]
    shares = [tasks_for_host(tasks, HostPlacement(host, 3)) for host in range(3)]
    assert sorted(task["index"] for share in shares for task in share) == list(range(7))


def test_a_single_instance_runs_everything_without_resource_config(tmp_path: Path) -> None:
    assert host_placement(SageMakerPaths(tmp_path)) == HostPlacement(index=0, count=1)
