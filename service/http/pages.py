"""The pages a person opens: the playground at ``/`` and Swagger UI at ``/docs``, both offline.

Every script and stylesheet comes from ``static/`` (the page's own files and vendored packages, each
with its version and licence in a README beside it), so nothing is fetched from a CDN and both pages
work on a machine without internet. Static files are looked up in a table built at import, never by
joining a client's path onto the folder, so a path cannot escape it. None of these routes is in the
OpenAPI document (they are not API) and none needs an API key (service/http/auth.py protects /v1 only);
the page asks for a key and sends it with its API calls.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"
SWAGGER = f"{STATIC_PREFIX}/vendor/swagger-ui"
FAVICON = f"{STATIC_PREFIX}/favicon.svg"
# Vendored files carry their version in their folder's README; an hour of caching is plenty for a page
# that changes with a deploy, and no-cache on the HTML makes a new deploy visible at once.
_CACHE = {"cache-control": "public, max-age=3600"}
_NO_CACHE = {"cache-control": "no-cache"}
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    "": "text/plain; charset=utf-8",  # LICENSE, NOTICE
    ".txt": "text/plain; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def _static_files(root: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix != ".md":
            files[path.relative_to(root).as_posix()] = path
    return files


_FILES = _static_files(STATIC_DIR)


def _media_type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@router.get("/")
async def playground() -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_NO_CACHE)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="seqserve API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=FAVICON,
        # validatorUrl: Swagger UI would otherwise send the document to an online validator.
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True, "displayRequestDuration": True},
    )


@router.get("/favicon.ico")
async def favicon() -> Response:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml", headers=_CACHE)


@router.get(STATIC_PREFIX + "/{path:path}")
async def static_file(path: str) -> Response:
    found = _FILES.get(path)
    if found is None:
        raise HTTPException(status_code=404, detail="Not Found")
    headers = _NO_CACHE if found.suffix in {".html", ".js", ".css"} and "vendor" not in path else _CACHE
    return FileResponse(found, media_type=_media_type(found), headers=headers)
