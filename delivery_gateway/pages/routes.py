"""Routes of the browser pages: `/`, `/demo` (when enabled) and `/static/`; app.py mounts them.

Never adds a page the settings do not enable: without GraphiQL and the demo page there is no `/` and no `/static/`.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from delivery_gateway.kernel.settings import Settings
from delivery_gateway.pages.html import STATIC_HREF, render_page
from delivery_gateway.pages.static import StaticAssets

STATIC_PATH = "/static"
DEMO_PATH = "/demo"


def page_routes(settings: Settings, *, graphql_path: str) -> list[BaseRoute]:
    """`/` lists the enabled pages; `/demo` is the live chat view; `/static/` serves their assets."""
    links: list[dict[str, str]] = []  # what `/` offers, in this order
    if settings.graphiql:
        links.append({"href": graphql_path, "title": "GraphiQL", "text": "explore and run operations"})
    if settings.demo_page_enabled:
        links.append({"href": DEMO_PATH, "title": "Live demo", "text": "a conversation's ticks, updated live"})
    if not links:
        return []

    items = "\n".join(
        f'<li><a href="{html.escape(link["href"].lstrip("/"))}">{html.escape(link["title"])}</a>'
        f" — {html.escape(link['text'])}</li>"
        for link in links
    )

    async def index(request: Request) -> Response:
        return render_page("index.html", {}, static=STATIC_HREF, links=items)

    async def demo(request: Request) -> Response:
        config = {"graphqlPath": graphql_path.lstrip("/"), "demoMode": settings.demo_mode}
        return render_page("demo.html", config, static=STATIC_HREF)

    routes: list[BaseRoute] = [Route("/", index, methods=["GET"])]
    if settings.demo_page_enabled:
        routes.append(Route(DEMO_PATH, demo, methods=["GET"]))
    routes.append(Mount(STATIC_PATH, app=StaticAssets(), name="static"))
    return routes
