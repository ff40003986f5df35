"""The one place the benchmarks import the gateway from, and the settings every benchmarked gateway runs with.

Never changes the gateway's defaults beyond what a row says it changes (backends, TTLs, credentials), and never
points a gateway at anything but loopback.
"""

from __future__ import annotations

import contextlib
import gc
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from delivery_gateway import Settings, create_app
from delivery_gateway.ops.gc_policy import GEN0_THRESHOLD, apply_serving_gc_policy

__all__ = [
    "API_KEY",
    "GEN0_THRESHOLD",
    "PUBLIC_URL",
    "InProcessGateway",
    "create_app",
    "gateway_env",
    "in_process_gateway",
    "open_ledger",
    "serving_gc_policy",
    "settings_from_env",
    "store_url_supported",
]

# One bearer key per bench run: every benchmarked request is an authenticated internal caller.
API_KEY = "bench-" + secrets.token_urlsafe(24)
# Webhooks are signed for this URL (`DELIVERY_GATEWAY_PUBLIC_URL`), so signatures do not depend on the port.
PUBLIC_URL = "https://gateway.bench.invalid"

# Raised for the warm rows: the default TTLs (30-60 s) would expire mid-run and turn a warm window partly cold.
WARM_TTL = 86400.0
TTL_VARIABLES = (
    "DELIVERY_GATEWAY_TTL_CONVERSATION",
    "DELIVERY_GATEWAY_TTL_PARTICIPANTS",
    "DELIVERY_GATEWAY_TTL_MESSAGES",
    "DELIVERY_GATEWAY_TTL_RECEIPTS",
    "DELIVERY_GATEWAY_TTL_RECEIPTS_TERMINAL",
)


def gateway_env(
    emulator_info: Mapping[str, Any] | None,
    *,
    store_url: str = "memory://",
    cache_url: str = "memory://",
    pubsub_url: str = "memory://",
    cache_ttls: float | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment of one gateway process: the emulator upstream (if any), the given backends, the bench API key."""
    env = {
        "TWILIO_ACCOUNT_SID": (emulator_info or {}).get("account_sid", "AC" + "0" * 31 + "1"),
        "TWILIO_AUTH_TOKEN": (emulator_info or {}).get("auth_token", "bench-auth-token"),
        "DELIVERY_GATEWAY_TWILIO_BASE_URL": (emulator_info or {}).get("url", "http://127.0.0.1:9"),
        "DELIVERY_GATEWAY_STORE_URL": store_url,
        "DELIVERY_GATEWAY_CACHE_URL": cache_url,
        "DELIVERY_GATEWAY_PUBSUB_URL": pubsub_url,
        "DELIVERY_GATEWAY_API_KEYS": API_KEY,
        "DELIVERY_GATEWAY_PUBLIC_URL": PUBLIC_URL,
        "DELIVERY_GATEWAY_DEMO_MODE": "false",
    }
    if cache_ttls is not None:
        env.update(dict.fromkeys(TTL_VARIABLES, str(cache_ttls)))
    env.update(extra or {})
    return env


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """`Settings()` from the process environment, or from `env` (same variable names) for in-process gateways."""
    if env is None:
        return Settings()
    return Settings(**{k: v for k, v in env.items() if k.startswith(("DELIVERY_GATEWAY_", "TWILIO_"))})


def store_url_supported(url: str) -> str | None:
    """None when this build of the gateway accepts `url` as DELIVERY_GATEWAY_STORE_URL, else why not (one line)."""
    from delivery_gateway.ledger import create_ledger

    try:
        Settings(DELIVERY_GATEWAY_STORE_URL=url)
        create_ledger(url)
    except ValidationError as exc:
        return "; ".join(error["msg"] for error in exc.errors())
    except Exception as exc:  # the factory's ValueError (or anything else) says why in its first line
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return None


class InProcessGateway:
    """A started gateway app in this process: its schema, and the context its GraphQL view builds per request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.view = app.state.gateway.graphql  # the Strawberry ASGI view mounted at /graphql
        self.schema = self.view.schema

    async def context(self) -> Any:
        """A fresh per-request context, built by the view exactly as for an HTTP request (demo caller)."""
        from starlette.requests import Request

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/graphql",
            "headers": [(b"content-type", b"application/json")],
            "query_string": b"",
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "app": self.app,
        }
        return await self.view.get_context(Request(scope), None)

    async def execute(self, query: str, variables: dict[str, Any], operation: str) -> Any:
        """One execution of the schema (the layer below the HTTP view), with a fresh context."""
        return await self.schema.execute(
            query, variable_values=variables, context_value=await self.context(), operation_name=operation
        )


@contextlib.asynccontextmanager
async def in_process_gateway(settings: Settings) -> AsyncIterator[InProcessGateway]:
    """`create_app(settings)` started (and stopped) in this process, without a server in front of it."""
    app = create_app(settings)
    gateway = app.state.gateway
    await gateway.start()
    try:
        yield InProcessGateway(app)
    finally:
        await gateway.close()


@contextlib.contextmanager
def serving_gc_policy() -> Iterator[None]:
    """The garbage-collector policy `serve` applies once started (delivery_gateway/ops/gc_policy.py), for an
    in-process gateway; CPython's defaults come back when the block exits."""
    previous = apply_serving_gc_policy()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)


@contextlib.asynccontextmanager
async def open_ledger(store_url: str) -> AsyncIterator[Any]:
    """The delivery ledger at `store_url`, opened through the gateway's own factory (to read back what it holds)."""
    from delivery_gateway.ledger import create_ledger

    ledger = create_ledger(store_url)
    await ledger.start()
    try:
        yield ledger
    finally:
        await ledger.close()
