"""HTML responses for the gateway's pages: templates from pages/templates/, a JSON config block, strict headers.

Never puts a value into a page unescaped, and never lets a page load a script or style from another origin.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from starlette.responses import HTMLResponse

# Scripts only from this origin (no inline script runs: configuration travels as inert JSON); styles may be
# inline because GraphiQL's components set them; connections only to this origin (WebSocket included, CSP3).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Pages sit at the root (/, /graphql, /demo) and refer to assets relatively, so a proxy may mount the gateway under
# a path prefix.
STATIC_HREF = "static"
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _template(name: str) -> Template:
    return Template(resources.files("delivery_gateway.pages").joinpath("templates", name).read_text("utf-8"))


def json_for_script(value: Any) -> str:
    """JSON safe inside `<script type="application/json">`: no `</script>`, no HTML comment, no `&` entity."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(template: str, config: dict[str, Any], **values: str) -> HTMLResponse:
    """The template with `$config` (JSON) and `values` substituted, served with PAGE_HEADERS."""
    body = _template(template).substitute(config=json_for_script(config), **values)
    return HTMLResponse(body, headers=PAGE_HEADERS)
