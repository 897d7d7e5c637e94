"""The API docs pages (/docs: Swagger UI, /redoc: ReDoc) served with their assets from a package, never a CDN.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google): blank on an
air-gapped server, and a third party's script running next to the operator's API key. The assets come from the
pinned `fastapi-offline` package (Swagger UI 5 and ReDoc 2, Apache-2.0 and MIT), served under `/docs-assets`.
Each page is built once and gets a Content-Security-Policy allowing only this origin's scripts and its own
inline script, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def page_policy(html: str) -> str:
    """The Content-Security-Policy of a docs page: scripts from this origin and the page's own inline scripts
    (by hash), styles from this origin and inline (both UIs set styles at run time), images from this origin
    and data: URLs, requests to this origin only (the OpenAPI document, "try it out"); no framing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _page(response: HTMLResponse) -> tuple[str, str]:
    html = bytes(response.body).decode()
    return html, page_policy(html)


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the docs pages and their assets to `app` (made with `docs_url=None, redoc_url=None`)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    swagger_html, swagger_policy = _page(
        get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # No validator badge: it would send the OpenAPI document's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )
    )
    redoc_html, redoc_policy = _page(
        get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
    )

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger_html, headers={"Content-Security-Policy": swagger_policy})

    @app.get(redoc_url, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(redoc_html, headers={"Content-Security-Policy": redoc_policy})
