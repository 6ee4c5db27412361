"""Open Inference Protocol over HTTP, in process, on the committed repository: every model answers over
V2 with exactly the numbers /v1 gives, errors have the protocol's shape, and limits apply as on /v1."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import MODELS, make_settings, read_m4_series

from service.app import create_app

HEADER = "Inference-Header-Content-Length"
TEXTS = ["a gripping , funny and moving film .", "dull , dull , dull .", "café au lait ☕"]


def _values(m4_series: list[tuple[str, list[float]]], length: int = 336) -> np.ndarray:
    return np.asarray([values[-length:] for _, values in m4_series], dtype=np.float32)


def _binary_infer(
    client: TestClient, path: str, tensors: list[tuple[str, str, np.ndarray]], **extra: Any
) -> Any:
    inputs, chunks = [], []
    for name, datatype, array in tensors:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(x)) + x for x in array.reshape(-1))
        else:
            raw = array.astype(np.float32 if datatype == "FP32" else array.dtype).tobytes()
        inputs.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                       "parameters": {"binary_data_size": len(raw)}})  # fmt: skip
        chunks.append(raw)
    header = orjson.dumps({"inputs": inputs, **extra})
    return client.post(
        path, content=header + b"".join(chunks),
        headers={HEADER: str(len(header)), "content-type": "application/octet-stream"},
    )  # fmt: skip


def _split(response: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse a V2 response (JSON or binary) into its header and arrays, from the protocol text."""
    body = response.content
    length = int(response.headers.get(HEADER, len(body)))
    header = orjson.loads(body[:length])
    arrays, offset = {}, length
    for out in header["outputs"]:
        if "data" in out:
            dtype = object if out["datatype"] == "BYTES" else np.float32
            arrays[out["name"]] = np.asarray(out["data"], dtype=dtype).reshape(out["shape"])
            continue
        size = out["parameters"]["binary_data_size"]
        raw = body[offset : offset + size]
        offset += size
        if out["datatype"] == "BYTES":
            items, pos = [], 0
            while pos < len(raw):
                (n,) = struct.unpack_from("<I", raw, pos)
                items.append(raw[pos + 4 : pos + 4 + n].decode())
                pos += 4 + n
            arrays[out["name"]] = np.asarray(items, dtype=object).reshape(out["shape"])
        else:
            arrays[out["name"]] = np.frombuffer(raw, dtype="<f4").reshape(out["shape"])
    assert offset == len(body)
    return header, arrays


def test_server_and_model_metadata(client: TestClient) -> None:
    meta = client.get("/v2").json()
    assert meta["name"] == "seqserve" and "binary_tensor_data" in meta["extensions"]
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    forecast = client.get("/v2/models/m4-hourly").json()
    assert forecast["platform"] == "onnx_onnxv1" and forecast["versions"] == ["1"]
    assert forecast["inputs"] == [{"name": "values", "datatype": "FP32", "shape": [-1, -1]}]
    assert forecast["outputs"] == [{"name": "quantiles", "datatype": "FP32", "shape": [-1, 48, 7]}]
    sentiment = client.get("/v2/models/sst2-bilstm/versions/1").json()
    assert sentiment["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in sentiment["outputs"]] == ["probabilities", "label"]
    tensor = client.get("/v2/models/lstm-next-step").json()
    assert tensor["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, -1, 1]}]
    assert client.get("/v2/models/m4-hourly/ready").json() == {"name": "m4-hourly", "ready": True}
    assert client.get("/v2/models/m4-hourly/config").json()["max_batch_size"] > 0


@pytest.mark.parametrize("binary", [False, True])
def test_forecast_over_v2_equals_v1(client: TestClient, m4_series: Any, binary: bool) -> None:
    values = _values(m4_series)
    v1 = client.post("/v1/forecast", json={"series": [{"values": row.tolist()} for row in values]}).json()
    if binary:
        response = _binary_infer(client, "/v2/models/m4-hourly/infer", [("values", "FP32", values)],
                                 parameters={"binary_data_output": True}, id="req-7")  # fmt: skip
        assert response.headers["content-type"] == "application/octet-stream"
    else:
        response = client.post("/v2/models/m4-hourly/versions/1/infer", json={
            "id": "req-7", "inputs": [{"name": "values", "datatype": "FP32", "shape": list(values.shape),
                                       "data": values.tolist()}]})  # fmt: skip
    assert response.status_code == 200, response.text
    header, arrays = _split(response)
    assert header["id"] == "req-7" and header["model_name"] == "m4-hourly" and header["model_version"] == "1"
    quantiles = arrays["quantiles"]
    assert quantiles.shape == (len(values), 48, 7)
    keys = list(v1["forecasts"][0]["quantiles"])
    for row, forecast in zip(quantiles, v1["forecasts"], strict=True):
        np.testing.assert_allclose(row[:, 3], forecast["point"], rtol=1e-6, atol=1e-6)
        for index, key in enumerate(keys):
            np.testing.assert_allclose(row[:, index], forecast["quantiles"][key], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_sentiment_bytes_over_v2_equals_v1(client: TestClient, binary: bool) -> None:
    v1 = client.post("/v1/sentiment", json={"model": "sst2-bilstm", "texts": TEXTS}).json()["results"]
    encoded = np.asarray([t.encode() for t in TEXTS], dtype=object)
    if binary:
        response = _binary_infer(client, "/v2/models/sst2-bilstm/infer", [("text", "BYTES", encoded)],
                                 outputs=[{"name": "label", "parameters": {"binary_data": True}},
                                          {"name": "probabilities"}])  # fmt: skip
    else:
        response = client.post("/v2/models/sst2-bilstm/infer", json={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(TEXTS)], "data": TEXTS}],
            "outputs": [{"name": "label"}, {"name": "probabilities"}]})  # fmt: skip
    assert response.status_code == 200, response.text
    header, arrays = _split(response)
    assert [o["name"] for o in header["outputs"]] == ["label", "probabilities"]
    assert arrays["label"].tolist() == [r["label"] for r in v1]
    expected = [[r["probabilities"]["negative"], r["probabilities"]["positive"]] for r in v1]
    np.testing.assert_allclose(arrays["probabilities"], expected, rtol=1e-6, atol=1e-7)


def test_generic_tensor_model_equals_onnxruntime(client: TestClient, m4_series: Any) -> None:
    raw = _values(m4_series, 48)
    x = ((raw - raw.mean(axis=1, keepdims=True)) / raw.std(axis=1, keepdims=True))[..., None].astype(
        np.float32
    )
    session = ort.InferenceSession(str(MODELS / "lstm-next-step" / "1" / "model.onnx"))
    (expected,) = session.run(["y"], {"x": x})
    response = _binary_infer(client, "/v2/models/lstm-next-step/infer", [("x", "FP32", x)])
    assert response.status_code == 200, response.text
    _, arrays = _split(response)
    np.testing.assert_allclose(arrays["y"], expected, rtol=1e-6, atol=1e-6)


def _error(response: Any, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    for fragment in fragments:
        assert fragment in body["error"], body["error"]


def _infer(client: TestClient, model: str, *inputs: dict[str, Any], **extra: Any) -> Any:
    return client.post(f"/v2/models/{model}/infer", json={"inputs": list(inputs), **extra})


def test_bad_requests_get_400_naming_the_problem(client: TestClient, m4_series: Any) -> None:
    row = _values(m4_series)[:1]
    good = {"name": "values", "datatype": "FP32", "shape": [1, 336], "data": row.tolist()}
    _error(_infer(client, "m4-hourly", {**good, "datatype": "FP64"}), 400, "values", "FP64", "FP32")
    _error(_infer(client, "m4-hourly", {**good, "shape": [336], "data": row[0].tolist()}), 400, "shape")
    _error(_infer(client, "m4-hourly", good, {**good, "name": "extra"}), 400, "extra", "unexpected")
    _error(_infer(client, "sst2-bilstm", {**good, "name": "other"}), 400, "missing input", "text")
    short = {**good, "shape": [1, 10], "data": row[0, :10].tolist()}
    _error(_infer(client, "m4-hourly", short), 400, "values.0", "at least 168")
    _error(_infer(client, "m4-hourly", good, outputs=[{"name": "nope"}]), 400, "unknown output")
    bad_utf8 = np.asarray([b"\xff\xfe bad"], dtype=object)
    _error(_binary_infer(client, "/v2/models/sst2-bilstm/infer", [("text", "BYTES", bad_utf8)]), 400,
           "text.0", "UTF-8")  # fmt: skip
    _error(client.post("/v2/models/m4-hourly/infer", content=b"{not json"), 400, "not valid JSON")
    _error(client.post("/v2/models/m4-hourly/infer", content=b"{}", headers={HEADER: "5"}), 400, "exceeds")


def test_unknown_models_and_versions_are_404(client: TestClient) -> None:
    _error(client.post("/v2/models/nope/infer", json={}), 404, "unknown model")
    _error(client.get("/v2/models/m4-hourly/versions/9"), 404, "version 9", "loaded versions: [1]")
    _error(client.get("/v2/models/m4-hourly/versions/x1"), 400, "integer")
    _error(client.get("/v2/not-a-route"), 404)


def test_limits_apply_as_on_v1() -> None:
    settings = make_settings(max_body_bytes=2_000, max_texts_per_request=2, max_text_chars=20,
                             max_series_per_request=1, max_queue_rows=1)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        texts = {"name": "text", "datatype": "BYTES", "shape": [3], "data": ["a", "b", "c"]}
        _error(_infer(client, "sst2-bilstm", texts), 400, "at most 2 texts")
        long = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x" * 21]}
        _error(_infer(client, "sst2-bilstm", long), 400, "at most 20")
        big = {"name": "values", "datatype": "FP32", "shape": [1, 900], "data": [1.0] * 900}
        _error(_infer(client, "m4-hourly", big), 413, "exceeds 2000 bytes")
        rows = {"name": "x", "datatype": "FP32", "shape": [2, 3, 1], "data": [0.0] * 6}
        response = _infer(client, "lstm-next-step", rows)
        _error(response, 503, "max_queue_rows=1")
        assert response.headers["retry-after"] == "1"


def test_timeout_is_504() -> None:
    with TestClient(create_app(make_settings(request_timeout_seconds=1e-9))) as client:
        texts = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}
        _error(_infer(client, "sst2-bilstm", texts), 504, "longer than")


def test_api_keys_guard_v2_with_the_protocol_error_shape() -> None:
    with TestClient(create_app(make_settings(api_keys=["k1"]))) as client:
        _error(client.get("/v2/models/m4-hourly"), 401, "missing API key")
        _error(client.post("/v2/repository/index", headers={"X-API-Key": "wrong"}), 401, "invalid API key")
        assert client.get("/v2/models/m4-hourly", headers={"Authorization": "Bearer k1"}).status_code == 200
        assert client.get("/v2/health/ready").status_code == 200


_SERIES = [values for _, values in read_m4_series(8)]


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(
    rows=st.lists(st.integers(0, len(_SERIES) - 1), min_size=1, max_size=4),
    length=st.integers(168, 400),
    texts=st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(str.strip),
                   min_size=1, max_size=4),
)  # fmt: skip
def test_any_request_answers_alike_as_json_and_as_binary(
    client: TestClient, rows: list[int], length: int, texts: list[str]
) -> None:
    values = np.asarray([_SERIES[i][-length:] for i in rows], dtype=np.float32)
    encoded = np.asarray([t.encode() for t in texts], dtype=object)
    for model, name, datatype, array, data in (
        ("m4-hourly", "values", "FP32", values, values.tolist()),
        ("sst2-bilstm", "text", "BYTES", encoded, texts),
    ):
        as_json = _infer(client, model, {"name": name, "datatype": datatype, "shape": list(array.shape),
                                         "data": data})  # fmt: skip
        as_binary = _binary_infer(client, f"/v2/models/{model}/infer", [(name, datatype, array)],
                                  parameters={"binary_data_output": True})  # fmt: skip
        assert as_json.status_code == as_binary.status_code
        if as_json.status_code != 200:  # e.g. a text with no token: the same 400 either way
            assert as_json.json() == as_binary.json()
            continue
        (_, from_json), (_, from_binary) = _split(as_json), _split(as_binary)
        assert from_json.keys() == from_binary.keys()
        for key, array_json in from_json.items():
            if array_json.dtype == object:
                assert [str(x) for x in array_json.reshape(-1)] == [
                    str(x) for x in from_binary[key].reshape(-1)
                ]
            else:
                np.testing.assert_allclose(array_json, from_binary[key], rtol=1e-6, atol=1e-7)


def test_huge_values_and_non_finite_rows_over_v2(client: TestClient, m4_series: Any) -> None:
    rows = _values(m4_series)[:2].copy()
    huge = np.full((1, 200), 3e38, dtype=np.float32)
    response = _binary_infer(client, "/v2/models/m4-hourly/infer", [("values", "FP32", huge)])
    # Either the graph copes, or the row is named: never a 5xx.
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert "values.0" in response.json()["error"]
    rows[1, 7] = np.inf  # only binary data can carry it; the per-row path names row and position
    _error(_binary_infer(client, "/v2/models/m4-hourly/infer", [("values", "FP32", rows)]), 400,
           "values.1.7", "finite")  # fmt: skip
