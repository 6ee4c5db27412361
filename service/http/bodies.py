"""Reading a request body, decompressing ``Content-Encoding: gzip`` or ``deflate`` within the body limit.

tritonclient can compress requests (``request_compression_algorithm``), as Triton accepts. The
decompressed size is bounded by the same ``max_body_bytes`` as a plain body, so a small compressed
bomb cannot make the service allocate more than a client could have sent uncompressed.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

from service.exceptions import ErrorDetail, InvalidInputError, PayloadTooLargeError

# zlib window bits: 16 + MAX_WBITS = gzip framing; MAX_WBITS = zlib (HTTP "deflate") framing.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "identity": None}


async def read_body(request: Request, max_body_bytes: int) -> bytes:
    body = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _WBITS:
        message = f"Content-Encoding {encoding!r} is not supported (use gzip, deflate or identity)"
        raise InvalidInputError(message, [ErrorDetail(("header", "content-encoding"), message)])
    wbits = _WBITS[encoding]
    if wbits is None:
        return body
    inflater = zlib.decompressobj(wbits)
    try:
        plain = inflater.decompress(body, max_body_bytes + 1)
    except zlib.error as exc:
        message = f"body is not valid {encoding} data: {exc}"
        raise InvalidInputError(message, [ErrorDetail(("body",), message)]) from exc
    if len(plain) > max_body_bytes:
        raise PayloadTooLargeError(f"decompressed request body exceeds {max_body_bytes} bytes")
    if not inflater.eof:
        message = f"{encoding} body is truncated"
        raise InvalidInputError(message, [ErrorDetail(("body",), message)])
    return plain
