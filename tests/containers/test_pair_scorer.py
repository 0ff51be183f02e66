"""The pair scorer: records, buckets, graphs traced per bucket, scores that mean something."""

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from pair_scorer.buckets import bucket_for, graph_batches, parse_buckets
from pair_scorer.compile import compile_encoder, graph_file
from pair_scorer.encoder import SentenceEncoder, load_encoder
from pair_scorer.records import RecordError, format_batch, parse_batch
from pair_scorer.runtime import PairRuntime
from pair_scorer.settings import ScorerSettings, SettingsError
from transformers import AutoTokenizer

from inferfleet.cli.batch.sample_pairs import sample_pairs
from inferfleet.containers.tiny_models import minilm_dir


@pytest.fixture(scope="module")
def traced_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_encoder(
        minilm_dir(),
        tmp_path_factory.mktemp("pair-traced"),
        buckets=(16, 32, 64),
        batch_size=4,
        target="cpu",
    )


def test_a_record_keeps_its_id_and_extra_keys_and_drops_the_texts() -> None:
    records = parse_batch(
        '{"id": "a1", "left": "x", "right": "y", "source": "feed-7"}\n'
        "\n"
        '{"id": 42, "left": "", "right": "z"}\n'
    )
    assert [record.id for record in records] == ["a1", 42]  # the blank line is no record
    lines = format_batch(records, [0.5, 0.1234567]).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "a1", "source": "feed-7", "score": 0.5},
        {"id": 42, "score": 0.123457},
    ]
    with pytest.raises(ValueError, match="1 scores for 2 records"):
        format_batch(records, [0.5])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not JSON"),
        ('["a"]', "line 2: a record is a JSON object"),
        ('{"left": "a", "right": "b"}', "line 2: 'id' must be"),
        ('{"id": true, "left": "a", "right": "b"}', "line 2: 'id' must be"),
        ('{"id": "x", "left": 3, "right": "b"}', "line 2 \\(id x\\): 'left' must be a string"),
        ('{"id": "x", "left": "a"}', "'right' must be a string"),
        ('{"id": "x", "left": "a", "right": "b", "score": 1}', "'score' is the output field"),
    ],
)
def test_a_bad_record_is_named_by_its_line(line: str, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        parse_batch('{"id": "ok", "left": "a", "right": "b"}\n' + line + "\n")


@pytest.mark.parametrize(("length", "bucket"), [(1, 16), (16, 16), (17, 32), (64, 64), (900, 64)])
def test_a_text_takes_the_smallest_bucket_that_holds_it(length: int, bucket: int) -> None:
    assert bucket_for(length, (16, 32, 64)) == bucket


def test_graph_batches_cover_every_text_once_within_the_batch_size() -> None:
    lengths = [3, 40, 17, 5, 70, 16, 33, 2, 1, 90, 15]
    batches = list(graph_batches(lengths, (16, 32, 64), batch_size=2))
    covered = sorted(index for batch in batches for index in batch.indices)
    assert covered == list(range(len(lengths)))
    assert all(1 <= len(batch.indices) <= 2 for batch in batches)
    for batch in batches:
        assert all(bucket_for(lengths[i], (16, 32, 64)) == batch.bucket for i in batch.indices)


@pytest.mark.parametrize("text", ["", "16,x", "1", " , "])
def test_bucket_lists_that_make_no_sense_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="buckets"):
        parse_buckets(text)


def test_settings_come_from_the_environment_and_name_a_bad_variable() -> None:
    settings = ScorerSettings.from_env(
        {
            "INFERFLEET_PAIR_TARGET": "cpu",
            "INFERFLEET_PAIR_BUCKETS": "64,16",
            "INFERFLEET_NEURON_CORES": "2",
            "INFERFLEET_PAIR_BATCH_SIZE": "",
        }
    )
    assert (settings.target, settings.buckets, settings.copies) == ("cpu", (16, 64), 2)
    assert settings.batch_size == ScorerSettings.batch_size
    assert ScorerSettings.from_env({}) == ScorerSettings()
    with pytest.raises(SettingsError, match="INFERFLEET_NEURON_CORES='two'"):
        ScorerSettings.from_env({"INFERFLEET_NEURON_CORES": "two"})
    with pytest.raises(SettingsError, match="INFERFLEET_PAIR_TARGET='gpu'"):
        ScorerSettings.from_env({"INFERFLEET_PAIR_TARGET": "gpu"})
    with pytest.raises(SettingsError, match="INFERFLEET_PAIR_BUCKETS"):
        ScorerSettings.from_env({"INFERFLEET_PAIR_BUCKETS": "big"})


@pytest.mark.slow
def test_bucketed_graphs_score_as_the_eager_model_does(traced_dir: Path) -> None:
    """Padding to a bucket and filling a graph batch must not change a score."""
    texts = [
        "Apple iPhone 13 128GB blue",
        "iphone 13 blue 128 gb - free shipping",
        "KitchenAid Artisan stand mixer 5 quart empire red " * 3,  # the 32 bucket
        "Stainless steel garlic press",
        "word " * 100,  # truncated at the largest bucket
    ]
    runtime = PairRuntime(traced_dir)
    got = runtime.score(texts, texts[::-1])
    model = load_encoder(minilm_dir())
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    with torch.inference_mode():
        encoded = [
            tokenizer([t], truncation=True, max_length=64, return_tensors="pt") for t in texts
        ]
        embeddings = torch.cat([model(e.input_ids, e.attention_mask) for e in encoded])
    expected = (embeddings * embeddings.flip(0)).sum(-1).clamp(0, 1)
    assert got == pytest.approx(expected.tolist(), abs=1e-4)
    assert runtime.score([], []) == []


@pytest.mark.slow
def test_duplicates_score_higher_than_unrelated_pairs(traced_dir: Path) -> None:
    records = list(sample_pairs(120, seed=7))
    scores = PairRuntime(traced_dir).score(
        [record["left"] for record in records], [record["right"] for record in records]
    )
    duplicates = [s for s, r in zip(scores, records, strict=True) if r["label"] == "duplicate"]
    unrelated = [s for s, r in zip(scores, records, strict=True) if r["label"] == "unrelated"]
    assert all(0.0 <= score <= 1.0 for score in scores)
    # Probability that a random duplicate outranks a random unrelated pair.
    auc = sum(d > u for d in duplicates for u in unrelated) / (len(duplicates) * len(unrelated))
    assert auc >= 0.97
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    assert mean(duplicates) - mean(unrelated) > 0.5


@pytest.mark.slow
def test_the_neuron_target_traces_each_bucket_for_one_core_and_loads_with_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Neuron device here: torch_neuronx stands in, recording what it is asked to trace."""
    calls = []

    def trace(model: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
        calls.append((model, [tuple(tensor.shape) for tensor in example]))
        return torch.jit.trace(model, example)

    fake = types.ModuleType("torch_neuronx")
    fake.trace = trace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    compiled = compile_encoder(minilm_dir(), tmp_path, buckets=(32, 16), batch_size=8)
    assert [shapes for _, shapes in calls] == [[(8, 16), (8, 16)], [(8, 32), (8, 32)]]
    assert all(isinstance(model, SentenceEncoder) and not model.training for model, _ in calls)
    manifest = json.loads((compiled / "manifest.json").read_text())
    assert manifest == {"target": "neuron", "buckets": [16, 32], "batch_size": 8}
    assert sorted(path.name for path in compiled.glob("*.pt")) == [graph_file(16), graph_file(32)]
    monkeypatch.delitem(sys.modules, "torch_neuronx")
    with pytest.raises(ImportError):  # the runtime of a Neuron build needs torch_neuronx
        PairRuntime(compiled)
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    assert PairRuntime(compiled).score(["a red mug"], ["a red mug"]) == [pytest.approx(1.0)]
