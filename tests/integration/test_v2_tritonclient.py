"""The Open Inference Protocol with Triton's own client, against ``python -m service`` (two workers) on a
repository of the real models: metadata, JSON and binary inference equal to /v1, BYTES text, the model
repository extension, and an unload that drains, frees memory and loses nothing already accepted."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
SERVED = {
    "m4-hourly": "1",
    "sst2-bilstm": "1",
    "lstm-next-step": "1",
    "mnist-rows": "1",
    "shakespeare-char": "1",
}
TEXTS = ["a gripping , funny and moving film .", "dull , dull , dull .", "naïve but charming ☺"]


def _m4(count: int, length: int) -> np.ndarray:
    rows = []
    with (REPO / "training" / "data" / "m4" / "Hourly-train.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            rows.append([float(x) for x in row[1:] if x.strip()][-length:])
            if len(rows) == count:
                break
    return np.asarray(rows, dtype=np.float32)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    base: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("v2")
    repo = tmp / "models"
    for name, version in SERVED.items():
        (repo / name).mkdir(parents=True)
        (repo / name / version).symlink_to(MODELS / name / version, target_is_directory=True)
    port = _free_port()
    env = {
        **os.environ,
        "SEQSERVE_PORT": str(port),
        "SEQSERVE_WORKERS": "2",
        "SEQSERVE_PROVIDERS": "cpu",
        "SEQSERVE_MODEL_REPOSITORY": str(repo),
        "SEQSERVE_REQUEST_TIMEOUT_SECONDS": "300",  # speed is not under test here
    }
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the service did not become ready"
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            yield Server(f"127.0.0.1:{port}", base, process)
        finally:
            process.terminate()
            process.wait(timeout=60)


@pytest.fixture
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url, network_timeout=300.0) as c:
        yield c


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "seqserve" and "binary_tensor_data" in meta["extensions"]
    for name, version in SERVED.items():
        assert client.is_model_ready(name) and client.is_model_ready(name, version)
        model = client.get_model_metadata(name, version)
        assert model["name"] == name and version in model["versions"] and model["platform"] == "onnx_onnxv1"
    assert not client.is_model_ready("m4-hourly", "7")
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("no-such-model")


@pytest.mark.parametrize("binary", [True, False])
def test_forecast_equals_v1(client: triton.InferenceServerClient, server: Server, binary: bool) -> None:
    values = _m4(5, 336)
    request = triton.InferInput("values", list(values.shape), "FP32")
    request.set_data_from_numpy(values, binary_data=binary)
    output = triton.InferRequestedOutput("quantiles", binary_data=binary)
    result = client.infer("m4-hourly", [request], outputs=[output], request_id="r1")
    quantiles = result.as_numpy("quantiles")
    assert result.get_response()["id"] == "r1" and quantiles.shape == (5, 48, 7)
    v1 = httpx.post(f"{server.base}/v1/forecast", json={"series": [{"values": r.tolist()} for r in values]},
                    timeout=300).json()["forecasts"]  # fmt: skip
    for row, forecast in zip(quantiles, v1, strict=True):
        expected = np.stack([forecast["quantiles"][k] for k in forecast["quantiles"]], axis=1)
        np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_sentiment_bytes_equals_v1(
    client: triton.InferenceServerClient, server: Server, binary: bool
) -> None:
    text = triton.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.asarray([t.encode() for t in TEXTS], dtype=object), binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "label")]
    result = client.infer("sst2-bilstm", [text], outputs=outputs)
    v1 = httpx.post(f"{server.base}/v1/sentiment", json={"texts": TEXTS}, timeout=300).json()["results"]
    # JSON carries BYTES as strings, the binary extension as bytes; tritonclient hands back either.
    labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
    assert labels == [r["label"] for r in v1]
    expected = [[r["probabilities"]["negative"], r["probabilities"]["positive"]] for r in v1]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-6, atol=1e-7)


def test_generic_model_json_and_binary_agree(client: triton.InferenceServerClient) -> None:
    raw = _m4(4, 48)
    x = ((raw - raw.mean(1, keepdims=True)) / raw.std(1, keepdims=True))[..., None].astype(np.float32)
    answers = []
    for binary in (True, False):
        tensor = triton.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        answers.append(client.infer("lstm-next-step", [tensor]).as_numpy("y"))
    assert answers[0].shape == (4, 1)
    np.testing.assert_allclose(answers[0], answers[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_mnist_classification_equals_v1(
    client: triton.InferenceServerClient, server: Server, binary: bool
) -> None:
    sample = json.loads((REPO / "tests" / "data" / "mnist_test_sample.json").read_text())
    images = np.asarray([item["sequence"] for item in sample["samples"][:6]], dtype=np.float32)
    tensor = triton.InferInput("sequences", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=binary)
    result = client.infer(
        "mnist-rows", [tensor], outputs=[triton.InferRequestedOutput("probabilities", binary)]
    )
    v1 = httpx.post(f"{server.base}/v1/classify", json={"sequences": images.tolist()}, timeout=300).json()
    expected = [[r["probabilities"][str(d)] for d in range(10)] for r in v1["results"]]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-6, atol=1e-7)


def test_generation_graph_steps_over_v2(client: triton.InferenceServerClient) -> None:
    meta = {t["name"]: t for t in client.get_model_metadata("shakespeare-char")["inputs"]}
    layers, hidden = meta["h"]["shape"][0], meta["h"]["shape"][2]
    tokens = triton.InferInput("tokens", [2, 3], "INT64")
    tokens.set_data_from_numpy(np.asarray([[1, 2, 3], [4, 5, 6]], dtype=np.int64))
    state = []
    for name in ("h", "c"):
        tensor = triton.InferInput(name, [layers, 2, hidden], "FP32")
        tensor.set_data_from_numpy(np.zeros((layers, 2, hidden), dtype=np.float32))
        state.append(tensor)
    result = client.infer("shakespeare-char", [tokens, *state])
    logits = result.as_numpy("logits")
    assert logits.shape[0] == 2 and np.isfinite(logits).all()
    assert result.as_numpy("h_out").shape == (layers, 2, hidden)


def test_malformed_requests_are_4xx_never_5xx(server: Server) -> None:
    bad = [
        (b'{"inputs": [{"name": "values", "datatype": "FP32", "shape": [1, -3], "data": []}]}', {}),
        (
            b'{"inputs": [{"name": "values", "datatype": "FP32", "shape": [1, 2]}]}',
            {"Inference-Header-Content-Length": "x"},
        ),
        (b'{"inputs": [{"name": "values", "datatype": "FP32", "shape": [1, 200],'
         b' "parameters": {"binary_data_size": 800}}]}', {}),
        (b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}),
    ]  # fmt: skip
    for body, headers in bad:
        response = httpx.post(f"{server.base}/v2/models/m4-hourly/infer", content=body, headers=headers)
        assert 400 <= response.status_code < 500 and "error" in response.json(), response.text


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _mapped_kib(pids: list[int], path: Path) -> tuple[int, int]:
    """How many of ``pids`` map ``path``, and the KiB of it they hold resident."""
    mapping, resident, target = 0, 0, str(path.resolve())
    for pid in pids:
        inside, maps = False, False
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split(maxsplit=5)
            if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
                inside = len(head) == 6 and head[5] == target
                maps = maps or inside
            elif inside and line.startswith("Rss:"):
                resident += int(line.split()[1])
        mapping += maps
    return mapping, resident


def _workers(server: Server) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(server.process.pid)], capture_output=True, text=True
    )
    pids = [int(p) for p in out.stdout.split()]
    # multiprocessing's resource tracker is a child too; the workers are the spawned ones.
    return [p for p in pids if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_unload_drains_frees_memory_and_load_restores(
    client: triton.InferenceServerClient, server: Server
) -> None:
    assert {(m["name"], m["state"]) for m in client.get_model_repository_index()} >= {
        ("sst2-bilstm", "READY")
    }
    workers = _workers(server)
    assert len(workers) == 2
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.base, timeout=300) as http:
            while not stop.wait(0.005):
                sent = time.monotonic()
                tensor = {"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS[:2]}
                response = http.post("/v2/models/sst2-bilstm/infer", json={"inputs": [tensor]})
                answers.append((sent, response.status_code))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        _unload_and_load(client, server, workers, answers)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _unload_and_load(
    client: triton.InferenceServerClient, server: Server, workers: list[int], answers: list[tuple[float, int]]
) -> None:
    time.sleep(1.0)
    # The embedding table lives in model.onnx.data, which ORT maps from the file rather than copying.
    weights = MODELS / "sst2-bilstm" / SERVED["sst2-bilstm"] / "model.onnx.data"
    rss_before = _rss_kib(workers)
    mapping_before, resident_before = _mapped_kib(workers, weights)
    unload_began = time.monotonic()
    client.unload_model("sst2-bilstm")
    unloaded_at = time.monotonic()
    # The other worker follows the unload through the reload folder, which it polls every 250 ms; under
    # a loaded CI machine that can take longer than a fixed pause, so wait (bounded) for both to let go.
    deadline = unloaded_at + 10.0
    while _mapped_kib(workers, weights)[0] and time.monotonic() < deadline:
        time.sleep(0.25)
    mapping_after, _ = _mapped_kib(workers, weights)
    rss_after = _rss_kib(workers)
    # Half a second unloaded at least, so that requests meet the unloaded model (``between`` below).
    time.sleep(max(0.0, unloaded_at + 0.5 - time.monotonic()))
    assert not client.is_model_ready("sst2-bilstm")
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["sst2-bilstm"]["state"] == "UNAVAILABLE" and index["sst2-bilstm"]["reason"] == "unloaded"
    assert client.is_server_ready()  # an unloaded model is not a readiness failure
    load_began = time.monotonic()
    client.load_model("sst2-bilstm")
    loaded_at = time.monotonic()
    time.sleep(0.5)
    assert client.is_model_ready("sst2-bilstm")
    # A request the client started just before the unload may still be in the socket, not yet accepted,
    # when the model goes; its 503 is correct. Like ``between``, leave a 50 ms margin at the boundary.
    before = [status for sent, status in answers if sent < unload_began - 0.05]
    between = [status for sent, status in answers if unloaded_at < sent < load_began - 0.05]
    after = [status for sent, status in answers if sent > loaded_at]
    print(f"requests before unload {len(before)}, while unloaded {len(between)}, after load {len(after)}; "
          f"RSS of both workers {rss_before} KiB -> {rss_after} KiB, of which the mapped weights "
          f"{resident_before} KiB in {mapping_before} workers -> {mapping_after} workers")  # fmt: skip
    assert before and set(before) == {200}, "a request accepted before the unload failed"
    assert set(between) <= {503}
    assert after and set(after) == {200}
    # Both workers held the model's weights, and both let them go: the mapped table is unmapped, and
    # their resident memory falls by at least what the table held resident plus one copy of the graph's
    # own weights (each worker holds one; half of it over both leaves room for allocator noise).
    assert mapping_before == 2 and resident_before > 0
    assert mapping_after == 0
    graph_kib = (weights.parent / "model.onnx").stat().st_size // 1024
    assert rss_after < rss_before - resident_before - graph_kib
