"""The intent classifier: buckets, tracing per shape, runtime agreement with the eager model."""

import json
from pathlib import Path

import pytest
import torch
from containers_support import INTENT_LABELS
from intent_classifier.buckets import bucket_for, encode_into_bucket
from intent_classifier.compile import compile_classifier, graph_file, main
from intent_classifier.model import load_classifier
from intent_classifier.runtime import IntentRuntime
from transformers import AutoTokenizer

QUERIES = [
    "where is my order",
    "running shoes for flat feet under 100 dollars",
    "does this tent fit four adults and is it waterproof in heavy rain",
    "hi",
]


@pytest.mark.parametrize(
    ("length", "bucket"), [(1, 16), (16, 16), (17, 32), (64, 64), (65, 128), (500, 128)]
)
def test_a_query_takes_the_smallest_bucket_that_holds_it(length: int, bucket: int) -> None:
    assert bucket_for(length, (128, 16, 64, 32)) == bucket


def test_a_batch_pads_to_one_bucket_and_truncates_at_the_largest(intent_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(intent_model_dir)
    ids, mask = encode_into_bucket(tokenizer, ["hi"], (16, 32))
    assert ids.shape == mask.shape == (1, 16)
    assert int(mask.sum()) == 3  # [CLS] hi [SEP]
    ids, mask = encode_into_bucket(tokenizer, ["hi", "word " * 20], (16, 32))
    assert ids.shape == (2, 32)
    ids, _ = encode_into_bucket(tokenizer, ["word " * 200], (16, 32))
    assert ids.shape == (1, 32)


def _eager_scores(model_dir: Path, texts: list[str]) -> torch.Tensor:
    model, _ = load_classifier(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer([text], return_tensors="pt")
            rows.append(model(encoded.input_ids, encoded.attention_mask).softmax(-1)[0])
    return torch.stack(rows)


@pytest.mark.slow
def test_float32_graphs_match_the_eager_model_across_buckets(
    intent_model_dir: Path, tmp_path: Path
) -> None:
    compiled = compile_classifier(
        intent_model_dir,
        tmp_path,
        buckets=(16, 32),
        batch_sizes=(2,),
        target="cpu",
        cpu_precision="float32",
    )
    runtime = IntentRuntime(compiled)
    predictions = runtime.classify(QUERIES[:3])  # three rows: one padding row for batch 2
    expected = _eager_scores(intent_model_dir, QUERIES[:3])
    got = torch.tensor([prediction.scores for prediction in predictions])
    # Padding to a bucket must not change the answer: the mask removes the padding.
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert [p.label for p in predictions] == [INTENT_LABELS[i] for i in expected.argmax(-1)]


def test_int8_graphs_stay_close_to_float32(
    intent_model_dir: Path, intent_compiled_dir: Path
) -> None:
    manifest = json.loads((intent_compiled_dir / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    assert manifest["labels"] == INTENT_LABELS
    # Scores of the untrained head sit near 1/4 each; 0.03 bounds the int8 error against that.
    got = torch.tensor([p.scores for p in IntentRuntime(intent_compiled_dir).classify(QUERIES)])
    torch.testing.assert_close(got, _eager_scores(intent_model_dir, QUERIES), atol=0.03, rtol=0)


def test_batches_use_the_largest_traced_batch_that_fits(intent_compiled_dir: Path) -> None:
    runtime = IntentRuntime(intent_compiled_dir)
    assert runtime.batch_sizes == [1, 4]
    assert runtime.chunk_sizes(1) == [(1, 1)]
    assert runtime.chunk_sizes(4) == [(4, 4)]
    assert runtime.chunk_sizes(9) == [(4, 4), (4, 4), (1, 1)]


def test_a_batch_answers_like_single_queries(intent_compiled_dir: Path) -> None:
    runtime = IntentRuntime(intent_compiled_dir)
    queries = ["where is my order", "hi", "red dress", "return a blender", "tents"]
    together = runtime.classify(queries)  # one call of the batch-4 graph, one of batch-1
    alone = [runtime.classify([query])[0] for query in queries]
    # int8 dynamic quantisation scales activations per call, so batching moves scores a little.
    torch.testing.assert_close(
        torch.tensor([p.scores for p in together]),
        torch.tensor([p.scores for p in alone]),
        atol=0.02,
        rtol=0,
    )


def test_compile_command_writes_one_graph_per_bucket(
    intent_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "compiled"
    main(
        [
            "--model-dir",
            str(intent_model_dir),
            "--out",
            str(out),
            "--buckets",
            "16",
            "--target",
            "cpu",
            "--batch-sizes",
            "4,1",
        ]
    )
    assert (out / graph_file(16, 1)).exists()
    assert (out / graph_file(16, 4)).exists()
    assert not (out / graph_file(32, 4)).exists()
    assert json.loads((out / "manifest.json").read_text())["batch_sizes"] == [1, 4]
