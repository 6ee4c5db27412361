"""The V2 codec without HTTP: every malformed request is a 400-class InvalidInputError naming the
problem, and any valid request decodes to the same tensors whether its data is JSON or binary."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from service.exceptions import InvalidInputError
from service.runtime.v2_codec import (
    NUMPY_DTYPES,
    decode_request,
    encode_response,
    parse_header_length,
)


def _binary_body(tensors: list[tuple[str, str, np.ndarray]], **extra: Any) -> tuple[bytes, int]:
    """A binary-extension body, built here by hand from the protocol text (not by the code under test)."""
    inputs, chunks = [], []
    for name, datatype, array in tensors:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(x)) + x for x in array.reshape(-1))
        else:
            raw = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()
        inputs.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                       "parameters": {"binary_data_size": len(raw)}})  # fmt: skip
        chunks.append(raw)
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(chunks), len(header)


def _json_body(tensors: list[tuple[str, str, Any, list[int]]]) -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": n, "datatype": d, "shape": s, "data": data} for n, d, data, s in tensors]}
    )


def _error(body: bytes, header_length: int | None = None) -> str:
    with pytest.raises(InvalidInputError) as caught:
        decode_request(body, header_length)
    return caught.value.message


def test_json_nested_and_flat_data_decode_alike() -> None:
    flat = decode_request(_json_body([("x", "FP32", [1, 2.5, 3, 4, 5, 6], [2, 3])]), None)
    nested = decode_request(_json_body([("x", "FP32", [[1, 2.5, 3], [4, 5, 6]], [2, 3])]), None)
    assert flat.inputs["x"].dtype == np.float32 and flat.inputs["x"].shape == (2, 3)
    np.testing.assert_array_equal(flat.inputs["x"], nested.inputs["x"])


def test_bytes_and_bool_binary_layouts() -> None:
    texts = np.array([b"caf\xc3\xa9", b"", b"x" * 300], dtype=object)
    flags = np.array([True, False, True])
    body, length = _binary_body([("t", "BYTES", texts), ("b", "BOOL", flags)])
    decoded = decode_request(body, length)
    assert list(decoded.inputs["t"]) == list(texts)
    np.testing.assert_array_equal(decoded.inputs["b"], flags)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("-1", "non-negative integer"), ("abc", "non-negative integer"), ("9999", "exceeds the body"),
     ("1e3", "non-negative integer"), ("", "non-negative integer")],
)  # fmt: skip
def test_bad_inference_header_content_length(header: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        parse_header_length(header, 100)


def test_binary_size_mismatches() -> None:
    values = np.arange(6, dtype=np.float32)
    body, length = _binary_body([("x", "FP32", values)])
    # Declared size disagrees with shape x datatype.
    wrong = body.replace(b'"binary_data_size":24', b'"binary_data_size":20')
    assert "needs 24" in _error(wrong[: length - 1] + wrong[length - 1 :], length)
    # Bytes left over after the inputs.
    assert "left over" in _error(body + b"\0\0\0\0", length)
    # Runs past the body.
    assert "runs past" in _error(body[:-4], length)


def test_bytes_length_prefix_running_past_the_tensor() -> None:
    raw = struct.pack("<I", 50) + b"short"
    header = orjson.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1],
                                       "parameters": {"binary_data_size": len(raw)}}]})  # fmt: skip
    assert "runs past the tensor" in _error(header + raw, len(header))
    truncated_prefix = struct.pack("<I", 1)[:2]
    header = orjson.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1],
                                       "parameters": {"binary_data_size": 2}}]})  # fmt: skip
    assert "4-byte length prefix" in _error(header + truncated_prefix, len(header))


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        ({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3]}, "has 4 elements"),
        ({"name": "x", "datatype": "FP32", "shape": [2, -2], "data": [1]}, "negative dimension"),
        ({"name": "x", "datatype": "FP32", "shape": [2**40, 2**40], "data": [1]}, "int64"),
        ({"name": "x", "datatype": "FP32", "shape": [1.5], "data": [1]}, "not an integer"),
        ({"name": "x", "datatype": "FP33", "shape": [1], "data": [1]}, "unknown datatype"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": ["1.0"]}, "JSON numbers"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": [True]}, "JSON numbers"),
        ({"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]}, "JSON integers"),
        ({"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}, "outside INT8"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": [1e39]}, "does not fit in FP32"),
        ({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}, "true or false"),
        ({"name": "x", "datatype": "BYTES", "shape": [1], "data": [5]}, "JSON strings"),
        ({"name": "x", "datatype": "FP32", "shape": [1]}, "no 'data'"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "extra": 1}, "unknown field"),
        ({"name": "", "datatype": "FP32", "shape": [1], "data": [1]}, "non-empty string"),
    ],
)
def test_malformed_json_tensors(tensor: dict[str, Any], expected: str) -> None:
    assert expected in _error(orjson.dumps({"inputs": [tensor]}))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (b"[1, 2]", "JSON object"),
        (b"{", "not valid JSON"),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]},'
         b' {"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}]}', "given twice"),
        (b'{"id": 5, "inputs": []}', "'id' must be a string"),
        (b'{"inputs": [], "bogus": 1}', "unknown field"),
        (b'{"parameters": {"sequence_id": 3}, "inputs": []}', "not supported"),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}],'
         b' "outputs": [{"name": "y", "parameters": {"classification": 2}}]}', "classification"),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}],'
         b' "outputs": [{"name": "y"}, {"name": "y"}]}', "requested twice"),
    ],
)  # fmt: skip
def test_malformed_requests(document: bytes, expected: str) -> None:
    assert expected in _error(document)


def test_data_and_binary_size_together_is_refused() -> None:
    header = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0],
                                       "parameters": {"binary_data_size": 4}}]})  # fmt: skip
    assert "not both" in _error(header + b"\0\0\0\0", len(header))


_DATATYPES = ["FP32", "FP64", "INT32", "INT64", "UINT8", "INT8", "BOOL"]


@st.composite
def _tensors(draw: st.DrawFn) -> list[tuple[str, str, np.ndarray]]:
    out = []
    for index in range(draw(st.integers(1, 3))):
        datatype = draw(st.sampled_from([*_DATATYPES, "BYTES"]))
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
        if datatype == "BYTES":
            count = int(np.prod(shape))
            items = draw(st.lists(st.text(max_size=8), min_size=count, max_size=count))
            array = np.array([s.encode() for s in items] or [], dtype=object).reshape(shape)
        else:
            dtype = NUMPY_DTYPES[datatype]
            elements = (
                st.floats(-1e6, 1e6, width=32) if dtype.kind == "f" else None
            )  # integers and bools: numpy's own strategies cover the full range
            array = draw(hnp.arrays(dtype, shape, elements=elements))
        out.append((f"in{index}", datatype, array))
    return out


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(_tensors())
def test_any_valid_request_decodes_alike_as_json_and_as_binary(
    tensors: list[tuple[str, str, np.ndarray]],
) -> None:
    def data(datatype: str, array: np.ndarray) -> list[Any]:
        flat = array.reshape(-1)
        return [x.decode() for x in flat] if datatype == "BYTES" else flat.tolist()

    as_json = _json_body([(n, d, data(d, a), list(a.shape)) for n, d, a in tensors])
    body, length = _binary_body(tensors)
    from_json, from_binary = decode_request(as_json, None), decode_request(body, length)
    for name, datatype, array in tensors:
        for decoded in (from_json, from_binary):
            assert decoded.datatypes[name] == datatype
            assert decoded.inputs[name].shape == array.shape
            assert decoded.inputs[name].tolist() == array.tolist()


def test_response_binary_and_json_carry_the_same_values() -> None:
    quantiles = np.arange(12, dtype=np.float32).reshape(1, 4, 3) / 7
    labels = np.array([b"positive"], dtype=object)
    body, length = encode_response(
        "m", 1, "id-1", [("q", "FP32", quantiles, True), ("l", "BYTES", labels, False)]
    )
    assert length is not None
    header = orjson.loads(body[:length])
    assert header["id"] == "id-1" and header["model_version"] == "1"
    q, label = header["outputs"]
    assert q["parameters"]["binary_data_size"] == quantiles.nbytes and "data" not in q
    np.testing.assert_array_equal(np.frombuffer(body[length:], dtype="<f4").reshape(q["shape"]), quantiles)
    assert label["data"] == ["positive"]
    plain, no_length = encode_response("m", 1, None, [("q", "FP32", quantiles, False)])
    assert no_length is None
    assert (
        np.asarray(orjson.loads(plain)["outputs"][0]["data"], dtype=np.float32).tolist()
        == quantiles.reshape(-1).tolist()
    )
