"""Open Inference Protocol (KServe V2) request decoding and response encoding. No HTTP here.

Follows the KServe "Open Inference Protocol" REST text and Triton's binary tensor data extension:
a body may start with a JSON inference header of ``Inference-Header-Content-Length`` bytes, followed
by the raw bytes of every input whose ``parameters.binary_data_size`` is set, in input order. Fixed-size
elements are little-endian; BOOL is one byte; BYTES elements are a 4-byte little-endian length and then
the bytes. Every problem is an ``InvalidInputError`` whose message names the input and what is wrong:
the client sent it, so it is a 400, never a 500.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from service.exceptions import ErrorDetail, InvalidInputError

# V2 datatype -> little-endian numpy dtype (BYTES: numpy object arrays of ``bytes``).
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_INT64_MAX = 2**63 - 1
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
# Request-level parameters this server acts on. Anything else is refused, not silently ignored.
_REQUEST_PARAMETERS = frozenset({"binary_data_output", "timeout"})


def bad(message: str, *loc: str | int) -> InvalidInputError:
    return InvalidInputError(message, [ErrorDetail(loc, message)] if loc else [])


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray[Any, Any]]
    datatypes: dict[str, str]
    # None: every output of the model, encoded as JSON unless binary_data_output says otherwise.
    outputs: list[RequestedOutput] | None
    binary_data_output: bool = False
    timeout_seconds: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_header_length(value: str | None, body_bytes: int) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise bad(f"Inference-Header-Content-Length must be a non-negative integer, got {value!r}")
    length = int(text)
    if length > body_bytes:
        raise bad(f"Inference-Header-Content-Length {length} exceeds the body's {body_bytes} bytes")
    return length


def decode_request(body: bytes, header_length: int | None) -> InferRequest:
    header_bytes = body if header_length is None else body[:header_length]
    binary = memoryview(body)[len(header_bytes) :]
    try:
        header = orjson.loads(header_bytes)
    except orjson.JSONDecodeError as exc:
        raise bad(f"inference header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise bad("inference request must be a JSON object")
    _no_unknown_keys(header, _REQUEST_KEYS, "request")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad("'id' must be a string", "id")
    parameters = _object(header.get("parameters", {}), "parameters")
    unknown = sorted(set(parameters) - _REQUEST_PARAMETERS)
    if unknown:
        supported = sorted(_REQUEST_PARAMETERS)
        raise bad(f"request parameters {unknown} are not supported (supported: {supported})")
    binary_output = _flag(parameters.get("binary_data_output", False), "parameters.binary_data_output")
    timeout = _timeout_seconds(parameters.get("timeout"))
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise bad("'inputs' must be a non-empty list of tensors", "inputs")
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        name, datatype, array, offset = _decode_input(raw, index, binary, offset)
        if name in inputs:
            raise bad(f"input {name!r} is given twice", "inputs", index, "name")
        inputs[name], datatypes[name] = array, datatype
    if offset != len(binary):
        raise bad(
            f"{len(binary) - offset} bytes of binary data are left over after the inputs "
            f"(binary_data_size values add up to {offset}, the body carries {len(binary)})"
        )
    return InferRequest(
        id=request_id,
        inputs=inputs,
        datatypes=datatypes,
        outputs=_decode_outputs(header.get("outputs")),
        binary_data_output=binary_output,
        timeout_seconds=timeout,
        parameters=parameters,
    )


def _decode_input(
    raw: Any, index: int, binary: memoryview, offset: int
) -> tuple[str, str, np.ndarray[Any, Any], int]:
    where = f"inputs[{index}]"
    if not isinstance(raw, dict):
        raise bad(f"{where} must be a JSON object", "inputs", index)
    _no_unknown_keys(raw, _INPUT_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise bad(f"{where}.name must be a non-empty string", "inputs", index, "name")
    where = f"input {name!r}"
    datatype = raw.get("datatype")
    if datatype not in NUMPY_DTYPES:
        raise bad(f"{where}: unknown datatype {datatype!r} (known: {sorted(NUMPY_DTYPES)})")
    shape = _shape(raw.get("shape"), where)
    count = math.prod(shape)
    parameters = _object(raw.get("parameters", {}), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    if set(parameters) - {"binary_data_size"}:
        raise bad(f"{where}: parameters {sorted(set(parameters) - {'binary_data_size'})} are not supported")
    if size is not None:
        if "data" in raw:
            raise bad(f"{where}: give either 'data' or parameters.binary_data_size, not both")
        if type(size) is not int or size < 0:
            raise bad(f"{where}: binary_data_size must be a non-negative integer, got {size!r}")
        if offset + size > len(binary):
            raise bad(
                f"{where}: binary_data_size {size} at offset {offset} runs past the binary data "
                f"({len(binary)} bytes after the header)"
            )
        chunk = binary[offset : offset + size]
        array = _from_binary(chunk, datatype, shape, count, where)
        return name, datatype, array, offset + size
    if "data" not in raw:
        raise bad(f"{where}: no 'data' and no parameters.binary_data_size")
    return name, datatype, _from_json(raw["data"], datatype, shape, count, where), offset


def _shape(raw: Any, where: str) -> list[int]:
    if not isinstance(raw, list):
        raise bad(f"{where}: 'shape' must be a list of integers")
    total = 1
    for dim in raw:
        if type(dim) is not int:
            raise bad(f"{where}: shape {raw} holds {dim!r}, which is not an integer")
        if dim < 0:
            raise bad(f"{where}: shape {raw} has a negative dimension")
        total *= dim
        if total > _INT64_MAX:
            raise bad(f"{where}: shape {raw} has more elements than int64 can count")
    return list(raw)


def _from_binary(chunk: memoryview, datatype: str, shape: list[int], count: int, where: str) -> Any:
    if datatype == "BYTES":
        return _bytes_elements(chunk, count, where).reshape(shape)
    dtype = NUMPY_DTYPES[datatype]
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise bad(
            f"{where}: binary_data_size is {len(chunk)} bytes, but shape {shape} of {datatype} "
            f"needs {expected}"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            raise bad(f"{where}: BOOL elements must be bytes 0 or 1")
        return raw.astype(np.bool_).reshape(shape)
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


def _bytes_elements(chunk: memoryview, count: int, where: str) -> np.ndarray[Any, Any]:
    elements = np.empty(count, dtype=object)
    position = 0
    for index in range(count):
        if position + 4 > len(chunk):
            raise bad(f"{where}: BYTES element {index} has no complete 4-byte length prefix")
        (length,) = struct.unpack_from("<I", chunk, position)
        position += 4
        if position + length > len(chunk):
            raise bad(
                f"{where}: BYTES element {index} declares {length} bytes, which runs past the tensor's "
                f"{len(chunk)} bytes"
            )
        elements[index] = bytes(chunk[position : position + length])
        position += length
    if position != len(chunk):
        raise bad(f"{where}: {len(chunk) - position} bytes left over after {count} BYTES elements")
    return elements


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _from_json(data: Any, datatype: str, shape: list[int], count: int, where: str) -> Any:
    flat = _flatten(data, where)
    if len(flat) != count:
        raise bad(f"{where}: shape {shape} has {count} elements, 'data' holds {len(flat)}")
    if datatype == "BYTES":
        if not all(isinstance(item, str) for item in flat):
            raise bad(f"{where}: BYTES data must be JSON strings")
        elements = np.empty(count, dtype=object)
        for index, item in enumerate(flat):
            try:
                elements[index] = item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise bad(f"{where}: element {index} is not valid Unicode (lone surrogate)") from exc
        return elements.reshape(shape)
    if datatype == "BOOL":
        if not all(type(item) is bool for item in flat):
            raise bad(f"{where}: BOOL data must be JSON true or false")
        return np.asarray(flat, dtype=np.bool_).reshape(shape)
    return _numbers(flat, datatype, where).reshape(shape)


def _numbers(flat: list[Any], datatype: str, where: str) -> np.ndarray[Any, Any]:
    dtype = NUMPY_DTYPES[datatype]
    integer = dtype.kind in "iu"
    allowed = (int,) if integer else (int, float)
    # type() rather than isinstance: JSON true is a Python bool, a subclass of int, and is not a number.
    if not all(type(item) in allowed for item in flat):
        kind = "integers" if integer else "numbers"
        raise bad(f"{where}: {datatype} data must be JSON {kind}")
    if integer:
        info = np.iinfo(dtype)
        if flat and (min(flat) < info.min or max(flat) > info.max):
            raise bad(f"{where}: a value lies outside {datatype}'s range [{info.min}, {info.max}]")
        return np.asarray(flat, dtype=dtype)
    with np.errstate(over="ignore"):
        array = np.asarray(flat, dtype=dtype)
    if not np.isfinite(array).all():
        position = int(np.argmin(np.isfinite(array)))
        raise bad(f"{where}: element {position} ({flat[position]!r}) does not fit in {datatype}")
    return array


def _decode_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise bad("'outputs' must be a list", "outputs")
    outputs: list[RequestedOutput] = []
    for index, item in enumerate(raw):
        where = f"outputs[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise bad(f"{where} must be an object with a string 'name'", "outputs", index)
        _no_unknown_keys(item, _OUTPUT_KEYS, where)
        parameters = _object(item.get("parameters", {}), f"{where}.parameters")
        if set(parameters) - {"binary_data"}:
            unsupported = sorted(set(parameters) - {"binary_data"})
            raise bad(f"{where}: parameters {unsupported} are not supported (no classification extension)")
        binary = _flag(parameters.get("binary_data", False), f"{where}.parameters.binary_data")
        if any(o.name == item["name"] for o in outputs):
            raise bad(f"output {item['name']!r} is requested twice", "outputs", index)
        outputs.append(RequestedOutput(item["name"], binary))
    return outputs


def _no_unknown_keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise bad(f"{where}: unknown field(s) {unknown} (allowed: {sorted(allowed)})")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(f"{where} must be a JSON object")
    return value


def _flag(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise bad(f"{where} must be true or false")
    return value


def _timeout_seconds(value: Any) -> float | None:
    # Triton's "timeout" request parameter is in microseconds.
    if value is None:
        return None
    if type(value) is not int or value <= 0:
        raise bad("parameters.timeout must be a positive integer (microseconds)")
    return value / 1_000_000


def encode_response(
    model_name: str,
    model_version: int,
    request_id: str | None,
    outputs: Sequence[tuple[str, str, np.ndarray[Any, Any], bool]],
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, datatype, array, binary in outputs:
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = _to_binary(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif datatype == "BYTES":
            tensor["data"] = [_text(item) for item in array.reshape(-1)]
        else:
            tensor["data"] = np.ascontiguousarray(array.reshape(-1))
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = tensors
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _to_binary(array: np.ndarray[Any, Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts: list[bytes] = []
        for item in array.reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()


def _text(item: Any) -> str:
    if isinstance(item, bytes):
        # JSON can only carry text; bytes that are not UTF-8 are sent with replacement marks, and a
        # client that needs them exactly asks for binary output.
        return item.decode("utf-8", errors="replace")
    return str(item)
