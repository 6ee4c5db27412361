"""JSON rendering with orjson (FastAPI's ORJSONResponse is deprecated in this FastAPI release)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.responses import JSONResponse

from service.exceptions import ErrorDetail


class OrjsonResponse(JSONResponse):
    # Subclassing JSONResponse is what makes FastAPI put the response_model schema in OpenAPI.

    def render(self, content: Any) -> bytes:
        return render_json(content)


def render_json(content: Any) -> bytes:
    """The body OrjsonResponse sends for ``content``."""
    # OPT_SERIALIZE_NUMPY writes float32 arrays directly, in float32's shortest repr (612.34, not
    # 612.3400268554688), without an intermediate list of Python floats.
    try:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        # Last line of defence: a string orjson refuses (a lone surrogate echoed in an error
        # message) is escaped by the stdlib instead of turning a client error into a 500.
        return json.dumps(content, default=_plain, ensure_ascii=True).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def error_content(
    error_type: str, message: str, details: list[ErrorDetail] | tuple[ErrorDetail, ...] = ()
) -> dict[str, Any]:
    return {
        "error": {
            "type": error_type,
            "message": message,
            "details": [{"loc": list(d.loc), "msg": d.msg} for d in details],
        }
    }


def error_response(
    status_code: int,
    error_type: str,
    message: str,
    details: list[ErrorDetail] | tuple[ErrorDetail, ...] = (),
    headers: Mapping[str, str] | None = None,
) -> OrjsonResponse:
    return OrjsonResponse(
        error_content(error_type, message, details), status_code=status_code, headers=headers
    )


def is_v2_path(path: str) -> bool:
    """Open Inference Protocol routes answer errors as ``{"error": "message"}``, not the /v1 shape."""
    return path == "/v2" or path.startswith("/v2/")


def v2_error_response(
    status_code: int,
    message: str,
    details: list[ErrorDetail] | tuple[ErrorDetail, ...] = (),
    headers: Mapping[str, str] | None = None,
) -> OrjsonResponse:
    """The protocol's one-string error; each detail's location and reason are folded into it."""
    parts = [message, *(f"{'.'.join(map(str, d.loc))}: {d.msg}" if d.loc else d.msg for d in details)]
    # A detail often repeats the message (codec errors); say it once.
    text = "; ".join(dict.fromkeys(parts))
    return OrjsonResponse({"error": text}, status_code=status_code, headers=headers)
