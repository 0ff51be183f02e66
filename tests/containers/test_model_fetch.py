"""What the serving images do at start with the environment a task gives them.

They fetch the model from S3, check the engine settings, run one copy of the LLM per
``INFERFLEET_REPLICAS`` on cores of its own, and share the classifier's traced graphs through
the compile cache. The scripts an image copies (``fetch_model.sh``, ``start.sh``,
``traced_cache.sh``) run from a tree laid out like the image, with the AWS CLI from the venv,
against a real moto S3 server.
"""

import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from containers_support import INTENT_CONTEXT, LLM_CONTEXT
from llm_engine import EngineSettings
from llm_engine.replicas import format_cores, parse_cores, replica_cores, replica_index
from moto_server import MotoServer
from pydantic import ValidationError

from inferfleet.containers.image_tree import image_tree
from inferfleet.containers.local_triton import free_port

BUCKET = "models"
VENV_BIN = Path(sys.executable).parent


def _fake_model() -> dict[str, bytes]:
    """A model folder in miniature: config, nested tokenizer files, two weight shards."""
    rng = random.Random(7)
    return {
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"]}).encode(),
        "tokenizer/vocab.txt": "\n".join(f"word{index}" for index in range(500)).encode(),
        "model-00001-of-00002.safetensors": rng.randbytes(3 * 1024 * 1024 + 17),
        "model-00002-of-00002.safetensors": rng.randbytes(700 * 1024),
    }


def _upload(files: dict[str, bytes], prefix: str) -> None:
    import boto3

    s3 = boto3.client("s3")
    existing = [bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])]
    if BUCKET not in existing:
        s3.create_bucket(Bucket=BUCKET)
    for name, body in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}{name}", Body=body)


def _environment(**variables: str) -> dict[str, str]:
    """This process's environment (moto's endpoint and test credentials) plus ``variables``."""
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **variables}


def _run(
    script: Path, *arguments: str, unset: tuple[str, ...] = (), **variables: str
) -> subprocess.CompletedProcess[str]:
    environment = _environment(**variables)
    for name in unset:
        environment.pop(name, None)
    return subprocess.run(
        [str(script), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _downloaded_keys(moto: MotoServer) -> list[str]:
    """Object keys the server was asked to send: GETs of a key, not bucket listings."""
    keys = []
    for entry in moto.recorded_requests():
        path = urllib.parse.urlsplit(entry["url"]).path
        bucket, _, key = path.lstrip("/").partition("/")
        if entry["method"] == "GET" and bucket == BUCKET and key:
            keys.append(key)
    return keys


def _files_under(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        path.relative_to(folder).as_posix(): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    parent = tmp_path_factory.mktemp("images")
    return {context.name: image_tree(context, parent) for context in (LLM_CONTEXT, INTENT_CONTEXT)}


def test_both_images_copy_one_fetch_script(images: dict[str, Path]) -> None:
    llm, intent = images["llm-neuron"], images["intent-neuron"]
    assert (llm / "fetch_model.sh").read_bytes() == (intent / "fetch_model.sh").read_bytes()
    for root in (llm, intent):
        for script in ("fetch_model.sh", "start.sh", "serve.sh"):
            assert os.access(root / script, os.X_OK), f"{root.name}/{script} is not executable"
    assert os.access(intent / "traced_cache.sh", os.X_OK)


@pytest.mark.slow
@pytest.mark.parametrize("image", ["llm-neuron", "intent-neuron"])
def test_fetch_downloads_every_object_and_nothing_on_a_restart(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path, image: str
) -> None:
    model = _fake_model()
    _upload(model, "llm/v1/")
    model_dir = tmp_path / "opt" / "models" / "llm"
    fetch = images[image] / "fetch_model.sh"

    first = _run(fetch, str(model_dir), INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/v1/")
    assert first.returncode == 0, first.stderr
    assert _files_under(model_dir) == model
    downloads = _downloaded_keys(moto)
    assert sorted(downloads) == sorted(f"llm/v1/{name}" for name in model)
    stamps = _stamps(model_dir)

    # A restarted container runs the same script on the same folder.
    restart = _run(fetch, str(model_dir), INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/v1")
    assert restart.returncode == 0, restart.stderr
    assert _downloaded_keys(moto) == downloads
    assert _stamps(model_dir) == stamps


def test_an_interrupted_fetch_resumes_with_what_is_missing(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path
) -> None:
    model = _fake_model()
    _upload(model, "llm/v1/")
    model_dir = tmp_path / "model"
    (model_dir / "tokenizer").mkdir(parents=True)
    # Present with the right size: kept. A shorter file: fetched again. Absent: fetched.
    kept = "model-00001-of-00002.safetensors"
    (model_dir / kept).write_bytes(model[kept])
    (model_dir / "config.json").write_bytes(model["config.json"][:5])

    result = _run(
        images["llm-neuron"] / "fetch_model.sh",
        str(model_dir),
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/v1/",
    )
    assert result.returncode == 0, result.stderr
    assert _files_under(model_dir) == model
    assert sorted(_downloaded_keys(moto)) == sorted(
        f"llm/v1/{name}" for name in model if name != kept
    )


def test_an_empty_prefix_fails_with_one_clear_line(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path
) -> None:
    _upload(_fake_model(), "llm/v1/")
    result = _run(
        images["llm-neuron"] / "fetch_model.sh",
        str(tmp_path / "model"),
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/v2/",
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"fetch_model: s3://{BUCKET}/llm/v2/ holds no objects; "
        "upload the model there or fix INFERFLEET_MODEL_ARTIFACT"
    ]
    assert _downloaded_keys(moto) == []


def test_an_unreadable_prefix_fails_with_one_clear_line(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path
) -> None:
    result = _run(
        images["llm-neuron"] / "fetch_model.sh",
        str(tmp_path / "model"),
        INFERFLEET_MODEL_ARTIFACT="s3://no-such-bucket/llm/v1/",
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fetch_model: cannot read s3://no-such-bucket/llm/v1/: ")
    assert "NoSuchBucket" in lines[0]


@pytest.mark.slow
def test_a_failed_download_fails_with_one_clear_line(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path
) -> None:
    _upload(_fake_model(), "llm/v1/")
    model_dir = tmp_path / "model"
    (model_dir / "config.json").mkdir(parents=True)  # where a file must go
    result = _run(
        images["llm-neuron"] / "fetch_model.sh",
        str(model_dir),
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/v1/",
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"fetch_model: downloading s3://{BUCKET}/llm/v1/ into {model_dir}")
    assert "config.json" in lines[0]


@pytest.mark.parametrize(
    ("artifact", "model_dir", "message"),
    [
        ("https://example.com/model/", "/opt/models/llm", "is not an S3 URI"),
        ("s3://models/llm/v1/", "meta-llama/Llama-3.1-8B", "must be an absolute path"),
    ],
)
def test_bad_locations_fail_before_any_request(
    moto: MotoServer, images: dict[str, Path], artifact: str, model_dir: str, message: str
) -> None:
    result = _run(
        images["llm-neuron"] / "fetch_model.sh", model_dir, INFERFLEET_MODEL_ARTIFACT=artifact
    )
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert moto.recorded_requests() == []


@pytest.mark.parametrize("artifact", [None, ""])
def test_without_an_artifact_the_baked_model_is_used(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path, artifact: str | None
) -> None:
    fetch = images["llm-neuron"] / "fetch_model.sh"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    if artifact is None:
        result = _run(fetch, str(model_dir), unset=("INFERFLEET_MODEL_ARTIFACT",))
    else:
        result = _run(fetch, str(model_dir), INFERFLEET_MODEL_ARTIFACT=artifact)
    assert result.returncode == 0, result.stderr
    assert _files_under(model_dir) == {"config.json": b"{}"}
    assert moto.recorded_requests() == []


def test_llm_start_rejects_bad_settings_before_fetching(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path
) -> None:
    _upload(_fake_model(), "llm/v1/")
    result = _run(
        images["llm-neuron"] / "start.sh",
        INFERFLEET_MODEL=str(tmp_path / "model"),
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/v1/",
        INFERFLEET_DTYPE="int8",
        INFERFLEET_PYTHON=sys.executable,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "settings: INFERFLEET_DTYPE=int8: use one of bfloat16, float16, float32"
    ]
    assert _downloaded_keys(moto) == []
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("image", "wrong_kind"), [("llm-neuron", "classifier"), ("intent-neuron", "llm")]
)
def test_start_refuses_a_task_for_the_other_kind(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path, image: str, wrong_kind: str
) -> None:
    result = _run(
        images[image] / "start.sh",
        INFERFLEET_SERVICE_KIND=wrong_kind,
        INFERFLEET_MODEL=str(tmp_path / "model"),
        INFERFLEET_INTENT_SOURCE_DIR=str(tmp_path / "model"),
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/v1/",
    )
    assert result.returncode != 0
    assert f"INFERFLEET_SERVICE_KIND={wrong_kind}" in result.stderr
    assert moto.recorded_requests() == []


def test_intent_start_fetches_before_tracing(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path
) -> None:
    _upload(_fake_model(), "intent/v1/")
    compiled = tmp_path / "compiled"
    result = _run(
        images["intent-neuron"] / "start.sh",
        INFERFLEET_INTENT_SOURCE_DIR=str(tmp_path / "source"),
        INFERFLEET_INTENT_MODEL_DIR=str(compiled),
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/intent/v2/",
        INFERFLEET_INTENT_TARGET="cpu",
    )
    assert result.returncode != 0
    assert f"s3://{BUCKET}/intent/v2/ holds no objects" in result.stderr
    assert not compiled.exists()


def test_engine_settings_read_what_the_service_sets() -> None:
    """Every variable the model service puts on a task, as its construct writes them."""
    task_environment = {
        "INFERFLEET_SERVICE_KIND": "llm",
        "INFERFLEET_MODEL_ARTIFACT": "s3://models/llm/v1/",
        "INFERFLEET_COMPILE_CACHE_URL": "s3://compile-cache/Fleet/Llm/",
        "INFERFLEET_INSTANCE_TYPE": "trn1.32xlarge",
        "INFERFLEET_TP_DEGREE": "32",
        "INFERFLEET_NEURON_CORES": "32",
        "INFERFLEET_REPLICAS": "1",
        "INFERFLEET_MAX_SEQ_LEN": "8192",
        "INFERFLEET_MAX_NUM_SEQS": "48",
        "INFERFLEET_QUANTIZATION": "none",
        "INFERFLEET_DTYPE": "float16",
        "INFERFLEET_MODEL": "/opt/models/llm",
    }
    settings = EngineSettings.from_env(task_environment)
    assert settings.tp_degree == 32
    assert settings.max_seq_len == 8192
    assert settings.max_num_seqs == 48
    assert settings.quantization == "none"
    assert (settings.replicas, settings.neuron_cores) == (1, 32)
    assert settings.dtype == "float16"
    assert settings.compile_cache_url == "s3://compile-cache/Fleet/Llm/"
    # An empty value is unset: the default applies.
    blank = EngineSettings.from_env(
        {**task_environment, "INFERFLEET_DTYPE": "", "INFERFLEET_COMPILE_CACHE_URL": ""}
    )
    assert blank.dtype == "bfloat16"
    assert blank.compile_cache_url is None


def test_settings_refuse_more_replicas_than_the_cores_hold() -> None:
    task = {"INFERFLEET_MODEL": "/opt/models/llm", "INFERFLEET_NEURON_CORES": "32"}
    fits = EngineSettings.from_env(
        {**task, "INFERFLEET_TP_DEGREE": "8", "INFERFLEET_REPLICAS": "4"}
    )
    assert (fits.replicas, fits.neuron_cores) == (4, 32)
    with pytest.raises(ValidationError, match="need 40 NeuronCores"):
        EngineSettings.from_env({**task, "INFERFLEET_TP_DEGREE": "8", "INFERFLEET_REPLICAS": "5"})


@pytest.mark.parametrize(
    ("visible", "replica", "tp_degree", "cores"),
    [
        ("0-31", 0, 8, "0-7"),
        ("0-31", 3, 8, "24-31"),
        (None, 1, 24, "24-47"),
        ("4-7,12-15", 1, 4, "12-15"),
        ("0,2,4,6", 1, 2, "4,6"),
    ],
)
def test_each_replica_takes_the_next_cores(
    visible: str | None, replica: int, tp_degree: int, cores: str
) -> None:
    assert replica_cores(visible, replica, tp_degree) == cores


def test_a_replica_beyond_the_visible_cores_is_refused() -> None:
    with pytest.raises(ValueError, match="lower INFERFLEET_REPLICAS or INFERFLEET_TP_DEGREE"):
        replica_cores("0-23", 1, 24)


def test_core_lists_round_trip() -> None:
    for text in ("0-31", "3", "0,2,5", "0-3,8-11"):
        assert parse_cores(format_cores(parse_cores(text))) == parse_cores(text)
    assert replica_index("llm_0_3") == 3


@dataclass(frozen=True)
class RunningEntrypoint:
    url: str
    metrics_url: str
    log_path: Path

    def answer(self, model: str, payload: dict, timeout: float = 180) -> dict | None:
        """The first answer to ``payload`` once the server takes requests; None if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = _read(f"{self.url}/v2/models/{model}/generate", json.dumps(payload).encode())
                return json.loads(body)
            except OSError:
                time.sleep(0.5)
        return None


@contextmanager
def _entrypoint(script: Path, workdir: Path, **variables: str) -> Iterator[RunningEntrypoint]:
    """An image's start script serving on 127.0.0.1 at free ports, stopped on exit."""
    http_port, metrics_port = free_port(), free_port()
    running = RunningEntrypoint(
        url=f"http://127.0.0.1:{http_port}",
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        log_path=workdir / "server.log",
    )
    environment = _environment(
        INFERFLEET_PYTHON=sys.executable,
        INFERFLEET_TRITON_BACKENDS=str(workdir / "backends"),
        INFERFLEET_HTTP_PORT=str(http_port),
        INFERFLEET_GRPC_PORT=str(free_port()),
        INFERFLEET_METRICS_PORT=str(metrics_port),
        OMP_NUM_THREADS="1",
        **variables,
    )
    addresses = ["--http-address=127.0.0.1", "--grpc-address=127.0.0.1"]
    with running.log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(script), *addresses, "--metrics-address=127.0.0.1"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield running
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait()


def _read(url: str, data: bytes | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as reply:
        return reply.read()


@pytest.mark.slow
def test_llm_entrypoint_serves_the_model_it_fetched_in_two_replicas(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path, tiny_lm_dir: Path
) -> None:
    _upload(_files_under(tiny_lm_dir), "llm/tiny/")
    model_dir = tmp_path / "models" / "llm"
    with _entrypoint(
        images["llm-neuron"] / "start.sh",
        tmp_path,
        INFERFLEET_SERVICE_KIND="llm",
        INFERFLEET_ENGINE="cpu",
        INFERFLEET_MODEL=str(model_dir),
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/llm/tiny/",
        INFERFLEET_MAX_SEQ_LEN="256",
        INFERFLEET_MAX_NUM_SEQS="2",
        INFERFLEET_DTYPE="float32",
        INFERFLEET_TP_DEGREE="2",
        INFERFLEET_REPLICAS="2",
        INFERFLEET_NEURON_CORES="4",
        NEURON_RT_VISIBLE_CORES="0-3",
    ) as running:
        answer = running.answer("llm", {"text_input": "a tent", "max_tokens": 4, "stream": False})
        log = running.log_path.read_text()
        assert answer is not None, log[-3000:]
        assert answer["text_output"]
        assert _files_under(model_dir) == _files_under(tiny_lm_dir)
        assert f"fetch_model: s3://{BUCKET}/llm/tiny/ is in {model_dir}" in log

        config = json.loads(_read(f"{running.url}/v2/models/llm/config"))
        assert config["instance_group"][0]["count"] == 2
        assert "llm replica 0 of 2 on NeuronCores 0-1" in log
        assert "llm replica 1 of 2 on NeuronCores 2-3" in log
        metrics = _read(running.metrics_url).decode()
        for replica in ("0", "1"):
            assert re.search(
                rf'^inferfleet_time_to_first_token_seconds_count\{{[^}}]*replica="{replica}"',
                metrics,
                re.M,
            ), metrics[-2000:]


CACHE_BUCKET = "compile-cache"
CACHE_URL = f"s3://{CACHE_BUCKET}/Fleet/Intent/"


def _traced_cache(
    images: dict[str, Path], action: str, source: Path, traced: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    settings = {
        "INFERFLEET_COMPILE_CACHE_URL": CACHE_URL,
        "INFERFLEET_INTENT_BUCKETS": "16,32",
        "INFERFLEET_INTENT_TARGET": "cpu",
        "INFERFLEET_INSTANCE_TYPE": "inf2.xlarge",
        "INFERFLEET_PYTHON": sys.executable,
        **variables,
    }
    return _run(
        images["intent-neuron"] / "traced_cache.sh", action, str(source), str(traced), **settings
    )


def _cached_keys(prefix: str = "Fleet/Intent/") -> list[str]:
    import boto3

    listing = boto3.client("s3").list_objects_v2(Bucket=CACHE_BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.mark.slow
def test_traced_graphs_are_shared_through_the_compile_cache(
    moto: MotoServer,
    images: dict[str, Path],
    tmp_path: Path,
    intent_model_dir: Path,
    intent_compiled_dir: Path,
) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=CACHE_BUCKET)
    first = _traced_cache(images, "fetch", intent_model_dir, tmp_path / "first")
    assert (first.returncode, first.stderr) == (1, "")

    stored = _traced_cache(images, "store", intent_model_dir, intent_compiled_dir)
    assert stored.returncode == 0, stored.stderr
    keys = _cached_keys()
    assert {key.rsplit("/", 1)[1] for key in keys} == set(_files_under(intent_compiled_dir))

    later = tmp_path / "later"
    fetched = _traced_cache(images, "fetch", intent_model_dir, later)
    assert fetched.returncode == 0, fetched.stderr
    assert _files_under(later) == _files_under(intent_compiled_dir)
    same_family = _traced_cache(
        images,
        "fetch",
        intent_model_dir,
        tmp_path / "big",
        INFERFLEET_INSTANCE_TYPE="inf2.48xlarge",
    )
    assert same_family.returncode == 0

    # Anything the graphs depend on changes the key.
    for change in (
        {"INFERFLEET_INTENT_BUCKETS": "16,32,64"},
        {"INFERFLEET_INTENT_TARGET": "neuron"},
        {"INFERFLEET_INSTANCE_TYPE": "trn2.48xlarge"},
    ):
        missed = _traced_cache(images, "fetch", intent_model_dir, tmp_path / "other", **change)
        assert missed.returncode == 1, change
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_a_cache_entry_without_its_manifest_is_not_used(
    moto: MotoServer,
    images: dict[str, Path],
    tmp_path: Path,
    intent_model_dir: Path,
    intent_compiled_dir: Path,
) -> None:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=CACHE_BUCKET)
    assert _traced_cache(images, "store", intent_model_dir, intent_compiled_dir).returncode == 0
    manifest = next(key for key in _cached_keys() if key.endswith("/manifest.json"))
    s3.delete_object(Bucket=CACHE_BUCKET, Key=manifest)  # as while another task still uploads
    result = _traced_cache(images, "fetch", intent_model_dir, tmp_path / "traced")
    assert result.returncode == 1


def test_without_a_cache_fetch_misses_and_store_does_nothing(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path, intent_compiled_dir: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    missed = _traced_cache(images, "fetch", source, tmp_path / "t", INFERFLEET_COMPILE_CACHE_URL="")
    kept = _traced_cache(
        images, "store", source, intent_compiled_dir, INFERFLEET_COMPILE_CACHE_URL=""
    )
    assert (missed.returncode, kept.returncode) == (1, 0)
    assert moto.recorded_requests() == []


def test_an_unreachable_cache_only_costs_the_trace(
    moto: MotoServer, images: dict[str, Path], tmp_path: Path, intent_compiled_dir: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    unreachable = {"INFERFLEET_COMPILE_CACHE_URL": "s3://no-such-cache/Fleet/Intent/"}
    missed = _traced_cache(images, "fetch", source, tmp_path / "t", **unreachable)
    assert missed.returncode == 1
    assert missed.stderr.startswith("traced_cache: cannot read s3://no-such-cache/")
    kept = _traced_cache(images, "store", source, intent_compiled_dir, **unreachable)
    assert kept.returncode == 0
    assert kept.stderr.startswith("traced_cache: storing in s3://no-such-cache/")
    assert len(kept.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_intent_entrypoint_fetches_the_model_and_takes_cached_graphs(
    moto: MotoServer,
    images: dict[str, Path],
    tmp_path: Path,
    intent_model_dir: Path,
    intent_compiled_dir: Path,
) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=CACHE_BUCKET)
    _upload(_files_under(intent_model_dir), "intent/v1/")
    assert _traced_cache(images, "store", intent_model_dir, intent_compiled_dir).returncode == 0
    source, traced = tmp_path / "source", tmp_path / "traced"
    with _entrypoint(
        images["intent-neuron"] / "start.sh",
        tmp_path,
        INFERFLEET_SERVICE_KIND="classifier",
        INFERFLEET_MODEL_ARTIFACT=f"s3://{BUCKET}/intent/v1/",
        INFERFLEET_INTENT_SOURCE_DIR=str(source),
        INFERFLEET_INTENT_MODEL_DIR=str(traced),
        INFERFLEET_COMPILE_CACHE_URL=CACHE_URL,
        INFERFLEET_INTENT_BUCKETS="16,32",
        INFERFLEET_INTENT_TARGET="cpu",
        INFERFLEET_INSTANCE_TYPE="inf2.xlarge",
    ) as running:
        answer = running.answer("intent", {"inputs": "where is my order"})
        log = running.log_path.read_text()
        assert answer is not None, log[-3000:]
    assert answer["label"] in json.loads((traced / "manifest.json").read_text())["labels"]
    assert _files_under(source) == _files_under(intent_model_dir)
    assert _files_under(traced) == _files_under(intent_compiled_dir)
    assert "traced_cache: traced graphs from " + CACHE_URL in log
    assert "stored in" not in log  # the graphs came from the cache: nothing was traced
