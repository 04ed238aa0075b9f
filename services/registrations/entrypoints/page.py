"""The volunteers' page (``/invoer/``): static HTML, CSS and JavaScript, no build step. It talks
to this service's API with the key a volunteer types in (kept in the tab's session storage)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

__all__ = ["PAGE_PATH", "build_page_router"]

PAGE_PATH = "/invoer/"
STATIC = resources.files("services.registrations.entrypoints").joinpath("static")
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# The page runs only its own script and talks only to this service (the key must go nowhere else).
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def build_page_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(PAGE_PATH.rstrip("/"))
    async def to_page() -> RedirectResponse:
        return RedirectResponse(PAGE_PATH)

    @router.get(PAGE_PATH)
    async def page() -> HTMLResponse:
        return HTMLResponse(
            STATIC.joinpath("index.html").read_text(encoding="utf-8"), headers=HEADERS
        )

    @router.get(PAGE_PATH + "{name}")
    async def static(name: str) -> Response:
        suffix = "." + name.rpartition(".")[2]
        file = STATIC.joinpath(name)
        if "/" in name or suffix not in CONTENT_TYPES or not file.is_file():
            return Response(status_code=404)
        return Response(file.read_bytes(), media_type=CONTENT_TYPES[suffix], headers=HEADERS)

    return router
