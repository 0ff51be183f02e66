"""The LLM engine module: settings from the environment, Neuron arguments, CPU streaming."""

import asyncio
import shutil
import time
from pathlib import Path

import pytest
import torch
from llm_engine import EngineSettings, GenerationRequest, create_engine
from llm_engine.neuron import engine_arguments, neuron_environment
from llm_engine.timing import TokenTimer
from pydantic import ValidationError
from serving_env import LlmEngineEnv, ServingEnv
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_settings_read_the_container_environment() -> None:
    settings = EngineSettings.from_env(
        {
            "INFERFLEET_MODEL": "/opt/models/llm",
            "INFERFLEET_TP_DEGREE": "32",
            "INFERFLEET_MAX_SEQ_LEN": "2048",
            "INFERFLEET_INSTANCE_ID": "i-0abc",
            "UNRELATED": "x",
        }
    )
    assert settings.model == "/opt/models/llm"
    assert settings.tp_degree == 32
    assert settings.max_seq_len == 2048
    assert settings.instance_id == "i-0abc"
    assert settings.engine == "vllm-nxdi"
    # Unset contract variables keep the contract's own defaults, the ones the constructs know.
    contract = LlmEngineEnv()
    assert (settings.max_num_seqs, settings.quantization) == (
        contract.max_num_seqs,
        contract.quantization,
    )


def test_settings_read_back_what_the_construct_wrote() -> None:
    written = ServingEnv(
        kind="llm",
        instance_type="trn1.32xlarge",
        neuron_cores=32,
        compile_cache_url="s3://cache/llm/",
        llm=LlmEngineEnv(tp_degree=8, replicas=4, max_num_seqs=16, quantization="int8"),
    ).to_env()
    settings = EngineSettings.from_env({**written, "INFERFLEET_MODEL": "/opt/models/llm"})
    assert (settings.tp_degree, settings.replicas, settings.max_num_seqs) == (8, 4, 16)
    assert settings.quantization == "int8" and settings.neuron_cores == 32
    assert settings.compile_cache_url == "s3://cache/llm/"


def test_settings_reject_a_bad_degree() -> None:
    with pytest.raises(ValueError, match="INFERFLEET_TP_DEGREE=0 must be at least 1"):
        EngineSettings.from_env({"INFERFLEET_MODEL": "m", "INFERFLEET_TP_DEGREE": "0"})


@pytest.mark.parametrize("engine", ["vllm-nxdi", "vllm-tnx"])
def test_inf2_and_trn1_differ_only_in_tensor_parallel_degree(engine: str) -> None:
    common = {
        "INFERFLEET_MODEL": "/opt/models/llm",
        "INFERFLEET_INSTANCE_ID": "same",
        "INFERFLEET_ENGINE": engine,
        "INFERFLEET_QUANTIZATION": "int8",
    }
    inf2 = EngineSettings.from_env({**common, "INFERFLEET_TP_DEGREE": "24"})
    trn1 = EngineSettings.from_env({**common, "INFERFLEET_TP_DEGREE": "32"})
    inf2_args, trn1_args = engine_arguments(inf2), engine_arguments(trn1)
    differing = {key for key in inf2_args | trn1_args if inf2_args.get(key) != trn1_args.get(key)}
    assert differing == {"tensor_parallel_size"}
    assert (inf2_args["tensor_parallel_size"], trn1_args["tensor_parallel_size"]) == (24, 32)
    assert neuron_environment(inf2) == neuron_environment(trn1)


def test_the_engine_setting_picks_the_neuron_back_end() -> None:
    chosen = {
        engine: neuron_environment(EngineSettings(model="/m", engine=engine))
        for engine in ("vllm-nxdi", "vllm-tnx")
    }
    assert chosen["vllm-nxdi"]["VLLM_NEURON_FRAMEWORK"] == "neuronx-distributed-inference"
    assert chosen["vllm-tnx"]["VLLM_NEURON_FRAMEWORK"] == "transformers-neuronx"
    assert EngineSettings(model="/m").engine == "vllm-nxdi"
    with pytest.raises(ValidationError, match="engine"):
        EngineSettings.from_env({"INFERFLEET_MODEL": "/m", "INFERFLEET_ENGINE": "neuron"})


def test_nxd_inference_quantises_through_its_own_config() -> None:
    settings = EngineSettings(model="/opt/models/llm", quantization="int8", max_seq_len=2048)
    arguments = engine_arguments(settings)
    # vLLM's --quantization is left unset: NxD Inference reads its neuron config instead.
    assert "quantization" not in arguments
    config = arguments["override_neuron_config"]
    assert config["quantized"] is True and config["quantization_dtype"] == "int8"
    assert config["quantized_checkpoints_path"].startswith("/opt/models/llm/")
    assert arguments["max_model_len"] == arguments["block_size"] == 2048
    environment = neuron_environment(settings)
    assert environment["NEURON_COMPILED_ARTIFACTS"].startswith("/opt/models/llm/")
    assert "NEURON_QUANT_DTYPE" not in environment


def test_transformers_neuronx_quantises_to_int8_and_batches_continuously() -> None:
    settings = EngineSettings(
        model="m",
        engine="vllm-tnx",
        max_seq_len=4096,
        max_num_seqs=16,
        quantization="int8",
        compile_cache_url="s3://cache/llm",
    )
    arguments = engine_arguments(settings)
    assert arguments["device"] == "neuron"
    assert arguments["quantization"] == "neuron_quant"
    assert arguments["max_num_seqs"] == 16
    assert arguments["max_model_len"] == arguments["block_size"] == 4096
    environment = neuron_environment(settings)
    assert environment["NEURON_QUANT_DTYPE"] == "s8"
    assert environment["NEURON_COMPILE_CACHE_URL"] == "s3://cache/llm"

    unquantised = EngineSettings(model="m", engine="vllm-tnx", quantization="none")
    assert "quantization" not in engine_arguments(unquantised)
    assert "NEURON_QUANT_DTYPE" not in neuron_environment(unquantised)
    assert "NEURON_COMPILE_CACHE_URL" not in neuron_environment(unquantised)


def test_token_timer_reports_gaps_between_marks() -> None:
    ticks = iter([10.0, 10.5, 10.75, 11.0])
    timer = TokenTimer(clock=lambda: next(ticks))
    assert [timer.mark(), timer.mark(), timer.mark()] == [0.5, 0.25, 0.25]
    assert timer.tokens == 3


async def _collect(engine, request: GenerationRequest) -> list[str]:
    return [piece async for piece in engine.stream(request)]


def test_cpu_engine_streams_the_greedy_continuation(tiny_lm_dir: Path) -> None:
    engine = create_engine(EngineSettings(engine="cpu", model=str(tiny_lm_dir), max_num_seqs=2))
    try:
        pieces = asyncio.run(_collect(engine, GenerationRequest("r1", "the weather today", 12)))
    finally:
        engine.close()

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    prompt = tokenizer("the weather today", return_tensors="pt").input_ids
    with torch.inference_mode():
        reference = model.generate(prompt, max_new_tokens=12, do_sample=False)
    expected = tokenizer.decode(reference[0, prompt.shape[1] :], skip_special_tokens=True)
    assert len(pieces) == 12
    assert "".join(pieces) == expected


def test_cpu_engine_caps_generation_at_the_sequence_length(tiny_lm_dir: Path) -> None:
    engine = create_engine(
        EngineSettings(engine="cpu", model=str(tiny_lm_dir), max_seq_len=20, max_num_seqs=1)
    )
    try:
        pieces = asyncio.run(_collect(engine, GenerationRequest("r", "one two three", 100)))
    finally:
        engine.close()
    prompt_tokens = len(AutoTokenizer.from_pretrained(tiny_lm_dir)("one two three").input_ids)
    assert len(pieces) == 20 - prompt_tokens


def test_cpu_engine_stops_decoding_when_the_consumer_leaves(tiny_lm_dir: Path) -> None:
    engine = create_engine(
        EngineSettings(engine="cpu", model=str(tiny_lm_dir), max_seq_len=512, max_num_seqs=1)
    )

    async def take_one_then_leave() -> None:
        stream = engine.stream(GenerationRequest("r", "hello", 500))
        async for _ in stream:
            break
        await stream.aclose()

    async def timed_short_request() -> float:
        started = time.perf_counter()
        await _collect(engine, GenerationRequest("s", "hi", 2))
        return time.perf_counter() - started

    try:
        started = time.perf_counter()
        asyncio.run(_collect(engine, GenerationRequest("full", "hello", 500)))
        full_decode = time.perf_counter() - started
        asyncio.run(take_one_then_leave())
        # One worker thread: the short request waits for the abandoned decode unless it stopped.
        after_abandon = asyncio.run(timed_short_request())
    finally:
        engine.close()
    assert after_abandon < full_decode / 4


def test_concurrent_streams_interleave(tiny_lm_dir: Path) -> None:
    engine = create_engine(EngineSettings(engine="cpu", model=str(tiny_lm_dir), max_num_seqs=2))
    order: list[str] = []

    async def follow(name: str) -> None:
        async for _ in engine.stream(GenerationRequest(name, f"prompt {name}", 30)):
            order.append(name)

    async def both() -> None:
        await asyncio.gather(follow("a"), follow("b"))

    try:
        asyncio.run(both())
    finally:
        engine.close()
    assert order.count("a") == order.count("b") == 30
    # With two workers, b's tokens arrive before a has finished, not after it.
    assert order.index("b") < len(order) - 1 - order[::-1].index("a")


def test_end_of_sequence_stops_unless_ignored(tiny_lm_dir: Path, tmp_path: Path) -> None:
    first = _first_greedy_token(tiny_lm_dir, "hello")
    # A copy of the model whose end-of-sequence token is the one it is about to emit.
    model_dir = tmp_path / "eos-model"
    shutil.copytree(tiny_lm_dir, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(first)
    tokenizer.save_pretrained(model_dir)

    engine = create_engine(EngineSettings(engine="cpu", model=str(model_dir), max_num_seqs=1))
    try:
        stopped = asyncio.run(_collect(engine, GenerationRequest("a", "hello", 5)))
        ignored = asyncio.run(_collect(engine, GenerationRequest("b", "hello", 5, ignore_eos=True)))
    finally:
        engine.close()
    assert stopped == []
    assert len(ignored) == 5


def _first_greedy_token(model_dir: Path, prompt: str) -> int:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.inference_mode():
        logits = model(tokenizer(prompt, return_tensors="pt").input_ids).logits
    return int(logits[0, -1].argmax())
