"""The browser pages through `create_app` (no browser): which exist under which settings, that they and their
assets need no credentials yet pass the HTTP guards, carry strict headers, and reference nothing off the gateway;
and that the vendored files are exactly what scripts/vendor_static.py records.

In-process (httpx ASGI transport); the browser runs are in tests/browser/.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from delivery_gateway.kernel.settings import Settings
from delivery_gateway.pages.html import json_for_script
from delivery_gateway.pages.static import STATIC_DIRECTORY
from scripts.vendor_static import PACKAGES
from tests.app_support import running_app

KEY = "pages-test-key-0123456789abcdef"
VENDOR = STATIC_DIRECTORY / "vendor"
HTML = {"Accept": "text/html"}


@asynccontextmanager
async def client(**env: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(_env_file=None, DELIVERY_GATEWAY_STORE_URL="memory://", **env)
    async with running_app(settings) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as c:
            yield c


async def test_demo_mode_serves_the_index_the_demo_page_and_graphiql():
    async with client(DELIVERY_GATEWAY_DEMO_MODE=True) as c:
        index = await c.get("/", headers=HTML)
        demo = await c.get("/demo", headers=HTML)
        ide = await c.get("/graphql", headers=HTML)
    assert index.status_code == demo.status_code == ide.status_code == 200
    assert 'href="graphql"' in index.text and 'href="demo"' in index.text
    assert '"demoMode":true' in demo.text
    assert "static/vendor/graphiql/graphiql.min.js" in ide.text and "unpkg" not in ide.text


async def test_outside_demo_mode_pages_and_assets_need_no_credentials_but_the_api_does():
    async with client(DELIVERY_GATEWAY_API_KEYS=KEY) as c:
        ide = await c.get("/graphql", headers=HTML)
        index = await c.get("/")
        demo = await c.get("/demo")
        asset = await c.get("/static/vendor/graphiql/graphiql.min.js")
        query_string = await c.get("/graphql?query={__typename}", headers=HTML)
        api = await c.post("/graphql", json={"query": "{ __typename }"})
    assert ide.status_code == 200 and '"Authorization": "Bearer "' in json.loads(_config(ide.text))["defaultHeaders"]
    assert index.status_code == 200 and 'href="demo"' not in index.text
    assert demo.status_code == 404  # off unless DELIVERY_GATEWAY_DEMO_PAGE=true
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert query_string.status_code == 401 and api.status_code == 401


async def test_demo_page_can_be_enabled_outside_demo_mode_and_then_asks_for_a_token():
    async with client(DELIVERY_GATEWAY_API_KEYS=KEY, DELIVERY_GATEWAY_DEMO_PAGE=True) as c:
        demo = await c.get("/demo")
    assert demo.status_code == 200 and '"demoMode":false' in demo.text


async def test_without_graphiql_and_demo_page_there_is_no_page_at_all():
    async with client(DELIVERY_GATEWAY_API_KEYS=KEY, DELIVERY_GATEWAY_GRAPHIQL=False) as c:
        statuses = [(await c.get(path, headers=HTML)).status_code for path in ("/", "/demo", "/static/demo/demo.js")]
        ide = await c.get("/graphql", headers=HTML)
    assert statuses == [404, 404, 404]
    assert ide.status_code == 401


async def test_pages_carry_a_strict_content_security_policy_and_assets_forbid_sniffing():
    async with client(DELIVERY_GATEWAY_DEMO_MODE=True) as c:
        for path in ("/", "/demo", "/graphql"):
            response = await c.get(path, headers=HTML)
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
            assert "<script>" not in response.text  # no inline script: the policy would block it
        asset = await c.get("/static/demo/demo.css")
    assert asset.headers["x-content-type-options"] == "nosniff"
    assert asset.headers["cache-control"] == "no-cache" and asset.headers["etag"]


async def test_static_files_pass_the_guards_and_stay_in_their_folder():
    async with client(DELIVERY_GATEWAY_API_KEYS=KEY, DELIVERY_GATEWAY_MAX_BODY_BYTES=2048) as c:
        too_big = await c.post("/static/demo/demo.js", content=b"x" * 4096)
        post = await c.post("/static/demo/demo.js", content=b"x")
        escape = await c.get("/static/../settings.py")
        encoded = await c.get("/static/%2e%2e/settings.py")
        cross = await c.get("/static/demo/demo.js", headers={"Origin": "https://evil.example"})
    assert too_big.status_code == 413
    assert post.status_code == 405
    assert escape.status_code == 404 and encoded.status_code == 404
    assert "access-control-allow-origin" not in cross.headers
    assert cross.headers["x-request-id"]  # the correlation-id guard ran


def _config(page: str) -> str:
    return re.search(r'<script id="[a-z-]+-config" type="application/json">(.*?)</script>', page, re.S).group(1)


def test_config_json_cannot_close_its_script_element():
    text = json_for_script({"x": "</script><script>alert(1)</script>", "y": "<!--", "z": "&amp;"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["x"] == "</script><script>alert(1)</script>"


def test_our_pages_and_scripts_name_no_other_origin():
    ours = [p for p in STATIC_DIRECTORY.rglob("*") if p.is_file() and "vendor" not in p.parts]
    ours += list((STATIC_DIRECTORY.parent / "pages" / "templates").glob("*.html"))
    assert len(ours) >= 6
    for path in ours:
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), path


def test_vendored_files_are_exactly_those_the_vendoring_script_records():
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    assert {(m["package"], m["version"]) for m in manifest.values()} == {(p.name, p.version) for p in PACKAGES}
    on_disk = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    listed = {f"{folder}/{name}" for folder, entry in manifest.items() for name in entry["files"]}
    assert on_disk == listed
    for folder, entry in manifest.items():
        assert "LICENSE" in entry["files"], f"{folder} has no licence"
        assert entry["tarball_integrity"].startswith("sha512-")
        for name, digest in entry["files"].items():
            assert hashlib.sha256((VENDOR / folder / name).read_bytes()).hexdigest() == digest, f"{folder}/{name}"
