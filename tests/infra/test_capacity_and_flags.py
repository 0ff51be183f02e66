import json
from pathlib import Path

import pytest

from inferfleet.constructs.neuron_instances import neuron_instance_type
from inferfleet.infra import capacity
from inferfleet.infra.feature_flags import cdk_feature_flags

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_packaged_feature_flags_match_cdk_json():
    cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
    flags = {k: v for k, v in cdk_json["context"].items() if k != "config"}
    assert flags == cdk_feature_flags()
    assert cdk_feature_flags()[
        "@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig"
    ]


@pytest.mark.parametrize(
    ("parameters_b", "dtype", "gib"),
    [(70, "int8", 65.19), (70, "bf16", 130.39), (8, "fp16", 14.90), (0.11, "bf16", 0.2049)],
)
def test_weights_are_parameters_times_bytes_per_dtype(parameters_b, dtype, gib):
    assert capacity.weights_gib(parameters_b, dtype) == pytest.approx(gib, rel=1e-3)


def test_kv_cache_of_a_llama_70b_shape():
    shape = capacity.default_decoder_shape(70)
    assert (shape.layers, shape.kv_heads, shape.head_dim) == (80, 8, 128)
    # 2 x 80 x 8 x 128 x 2 bytes = 320 KiB per token
    assert capacity.kv_cache_gib(shape, 4096, 8) == pytest.approx(10.0)
    assert capacity.kv_cache_gib(None, 4096, 8) == 0


def test_available_memory_is_16_gib_per_core_on_inf2_and_trn1():
    assert capacity.available_gib(neuron_instance_type("inf2.48xlarge"), 24) == 384
    assert capacity.available_gib(neuron_instance_type("trn1.32xlarge"), 32) == 512
    assert capacity.available_gib(neuron_instance_type("trn2.48xlarge"), 64) == 1536
