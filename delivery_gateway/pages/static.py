"""The package's static assets (delivery_gateway/static/) as an ASGI app: our page scripts and the vendored
libraries, with their licences.

Never serves a file outside that folder, never answers anything but GET/HEAD, and never needs a caller.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIRECTORY = Path(str(resources.files("delivery_gateway").joinpath("static")))


class StaticAssets(StaticFiles):
    """StaticFiles that revalidates (ETag / Last-Modified, so a page always gets the installed version) and forbids
    MIME sniffing."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIRECTORY, follow_symlink=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
