"""The `delivery-gateway` command: serve (real Twilio), demo (embedded emulator), emulator, migrate, webhooks install.

Never holds gateway logic of its own: it parses arguments, builds Settings, and hands over to app/emulator code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp

from delivery_gateway.kernel.settings import Settings

PROG = "delivery-gateway"
DEMO_HINT = f"run `{PROG} demo` to try the gateway on its built-in emulator without credentials"


class ConfigError(Exception):
    """A configuration problem the user must fix; printed as one line, exit status 2."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from env/.env, with bad values turned into one readable line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first.get("loc", ())) or "configuration"
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message} ({DEMO_HINT})") from None


def _serve_settings() -> Settings:
    settings = load_settings()
    if settings.demo_mode:
        raise ConfigError(
            "DELIVERY_GATEWAY_DEMO_MODE=true lets every caller in without credentials; serve refuses it "
            f"(demo mode belongs to `{PROG} demo`)"
        )
    missing = settings.missing_credentials()
    if missing:
        raise ConfigError(f"{missing[0]} is not set; it is needed to reach Twilio ({DEMO_HINT})")
    return settings


async def _run_uvicorn(app: ASGIApp, host: str, port: int, *, access_log: bool = True) -> None:
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", lifespan="on", proxy_headers=True, access_log=access_log
    )
    await uvicorn.Server(config).serve()


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _serve_settings()
    from delivery_gateway.ops.runner import StartupError
    from delivery_gateway.ops.serve import serve

    try:
        serve(settings, args.host, args.port)
    except StartupError as exc:
        raise ConfigError(str(exc)) from None


def _emulator_credentials() -> tuple[str, str, bool]:
    """The emulator's credentials: the environment's when set, else freshly made up (and reported)."""
    from delivery_gateway.kernel.sids import ACCOUNT, is_sid, new_sid

    sid = os.environ.get("TWILIO_ACCOUNT_SID")
    token = os.environ.get("TWILIO_AUTH_TOKEN")
    if sid and not is_sid(sid, ACCOUNT):
        raise ConfigError("TWILIO_ACCOUNT_SID: must be 'AC' followed by 32 hex digits")
    if sid and token:
        return sid, token, False
    import secrets

    return new_sid(ACCOUNT), secrets.token_hex(16), True


def _emulator_api_keys() -> dict[str, str]:
    """An API key pair from TWILIO_API_KEY/TWILIO_API_SECRET, accepted as REST credentials like Twilio does."""
    from delivery_gateway.kernel.sids import is_sid

    key, secret = os.environ.get("TWILIO_API_KEY"), os.environ.get("TWILIO_API_SECRET")
    if not key and not secret:
        return {}
    if not (key and secret):
        raise ConfigError("TWILIO_API_KEY and TWILIO_API_SECRET go together: set both or neither")
    if not is_sid(key, "SK"):
        raise ConfigError("TWILIO_API_KEY: must be an API key SID, 'SK' followed by 32 hex digits")
    return {key: secret}


def cmd_emulator(args: argparse.Namespace) -> None:
    from delivery_gateway.emulator import EmulatorConfig, create_emulator_app

    sid, token, made_up = _emulator_credentials()
    api_keys = _emulator_api_keys()
    config = EmulatorConfig(
        account_sid=sid, auth_token=token, api_keys=api_keys, seed=args.seed, seed_data=not args.empty
    )
    base = f"http://{args.host}:{args.port}"
    print(f"Twilio Conversations emulator on {base} (not Twilio: test data only)")
    if made_up:
        print("TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN were not set; the emulator made these up:")
        print(f"  TWILIO_ACCOUNT_SID={sid}")
        print(f"  TWILIO_AUTH_TOKEN={token}")
    if api_keys:
        print(f"It also accepts the API key {next(iter(api_keys))} (TWILIO_API_KEY/TWILIO_API_SECRET) for REST calls.")
    print(f"Point the gateway at it with DELIVERY_GATEWAY_TWILIO_BASE_URL={base}", flush=True)
    asyncio.run(_run_uvicorn(create_emulator_app(config), args.host, args.port))


DEMO_SUMMARY_SECONDS = 60.0  # the demo prints one line of request counts this often instead of an access log


def _demo_print(line: str) -> None:
    print(f"DEMO:     {line}", flush=True)


async def _demo(host: str, port: int, seed: int, emulator_port: int, state_dir: Path, sock: socket.socket) -> None:
    import logging

    from delivery_gateway.app import create_app
    from delivery_gateway.emulator import EmulatorConfig
    from delivery_gateway.emulator.server import serve_emulator
    from delivery_gateway.emulator.traffic import LiveTraffic
    from delivery_gateway.http.access_summary import AccessSummary
    from delivery_gateway.kernel.sids import ACCOUNT, new_sid
    from delivery_gateway.ops.environment import environment_warnings
    from delivery_gateway.ops.logs import configure_logging
    from delivery_gateway.ops.runner import run_gateway, served_config
    from delivery_gateway.webhooks.install import WEBHOOK_FILTERS

    port = sock.getsockname()[1]  # the one the system chose, for --port 0
    sid, token = new_sid(ACCOUNT), "demo-" + new_sid("XX")[2:]
    public = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    emulator_config = EmulatorConfig(
        account_sid=sid,
        auth_token=token,
        seed=seed,
        seed_data=True,
        simulate=True,
    )
    async with serve_emulator(emulator_config, host="127.0.0.1", port=emulator_port) as emulator:
        settings = load_settings(
            TWILIO_ACCOUNT_SID=sid,
            TWILIO_AUTH_TOKEN=token,
            DELIVERY_GATEWAY_TWILIO_BASE_URL=emulator.base_url,
            DELIVERY_GATEWAY_PUBLIC_URL=public,
            DELIVERY_GATEWAY_STORE_URL=f"sqlite:///{state_dir / 'ledger.sqlite3'}",
            DELIVERY_GATEWAY_CACHE_URL="memory://",
            DELIVERY_GATEWAY_PUBSUB_URL="memory://",
            DELIVERY_GATEWAY_DEMO_MODE=True,
        )
        for service_sid in emulator.state.store.services:
            emulator.state.set_webhook(
                post_webhook_url=f"{public}/webhooks/twilio", filters=WEBHOOK_FILTERS, service_sid=service_sid
            )
        banner = [
            "",
            "  delivery-gateway -- DEMO MODE",
            "  Data comes from the built-in Twilio Conversations emulator, not from Twilio.",
            "  No credentials are needed, from you or from callers: do not expose this to a network.",
            f"  Live demo: {public}/demo",
            f"  GraphiQL:  {public}/graphql",
            f"  Webhooks:  {public}/webhooks/twilio (the emulator posts simulated deliveries here)",
            f"  Emulator:  {emulator.base_url}",
            f"  Ledger:    {state_dir / 'ledger.sqlite3'} (removed on exit)",
            f"  Requests are summarised every {DEMO_SUMMARY_SECONDS:g} s instead of logged one by one.",
            "",
        ]
        print("\n".join(banner), flush=True)
        gateway_app = create_app(settings)
        app = AccessSummary(gateway_app)
        # After the emulator's server configured uvicorn's loggers: the gateway's configuration wins.
        configure_logging(settings.log_format, settings.log_level, request_lines=False)
        for warning in environment_warnings():
            logging.getLogger("delivery_gateway.startup").warning(warning)
        config = served_config(app, settings)
        background = [
            asyncio.create_task(LiveTraffic(emulator.state, seed=seed).run(), name="demo-traffic"),
            asyncio.create_task(app.report_every(DEMO_SUMMARY_SECONDS, _demo_print), name="demo-access-summary"),
        ]
        try:
            await run_gateway(config, gateway_app.state.gateway, sock)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            last = app.line()
            _demo_print(f"{app.total} requests served" + (f"; since the last summary: {last}" if last else ""))
            # The emulator's server shares uvicorn's loggers: keep its shutdown from repeating the gateway's lines.
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def cmd_demo(args: argparse.Namespace) -> None:
    from delivery_gateway.ops.runner import StartupError, bind_socket, run_served

    try:
        sock = bind_socket(args.host, args.port)  # a busy port fails here, in one line, before anything starts
        # The ledger lives in a temporary folder that is removed however the demo ends (Ctrl-C, SIGTERM included).
        with tempfile.TemporaryDirectory(prefix="delivery-gateway-demo-", ignore_cleanup_errors=True) as state_dir:
            run_served(_demo(args.host, args.port, args.seed, args.emulator_port, Path(state_dir), sock))
    except StartupError as exc:
        raise ConfigError(str(exc)) from None


async def _install_webhooks(url: str, service_sid: str | None, services: bool) -> Any:
    from delivery_gateway.kernel.metrics import Metrics
    from delivery_gateway.upstream.client import UpstreamClient
    from delivery_gateway.webhooks.install import install_webhooks

    settings = _serve_settings()
    async with UpstreamClient(settings, metrics=Metrics()) as upstream:
        return await install_webhooks(upstream, url, service_sid=service_sid, services=services)


def cmd_webhooks_install(args: argparse.Namespace) -> int:
    from delivery_gateway.kernel.sids import SERVICE, is_sid

    if args.service and not is_sid(args.service, SERVICE):
        raise ConfigError(f"--service: {args.service!r} is not a Conversation Service SID (IS + 32 hex digits)")
    if args.service and args.services:
        raise ConfigError("--service and --services: give one service, or let --services find every one")
    from delivery_gateway.upstream.errors import (
        UpstreamError,
        UpstreamTimeout,
        UpstreamUnauthorized,
        UpstreamUnavailable,
    )

    try:
        report = asyncio.run(_install_webhooks(args.url, args.service, args.services))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except (UpstreamUnavailable, UpstreamTimeout) as exc:
        where = load_settings().twilio_base_url
        if exc.status is None:  # no HTTP answer at all: refused, reset, timed out, breaker open
            raise ConfigError(f"could not reach Twilio at {where} ({exc}); nothing was changed") from None
        raise ConfigError(f"Twilio at {where} is failing (HTTP {exc.status}); nothing was changed, retry") from None
    except UpstreamUnauthorized:
        raise ConfigError("Twilio refused the credentials (TWILIO_ACCOUNT_SID and the auth token or API key)") from None
    except UpstreamError as exc:
        raise ConfigError(f"Twilio refused the webhook configuration: {exc}") from None
    for change in report.changes:
        scope = f"service {_service_name(change.service)}" if change.service else "account default"
        print(f"Webhook configuration ({scope})")
        print(f"  before: {_describe(change.before)}")
        print(f"  after:  {_describe(change.after)}")
    if not report.hidden:
        return 0
    # The account's configuration is set, but Twilio fires these services' own hooks instead of it.
    count = len(report.hidden)
    print(
        f"{PROG}: {count} service{'s' if count != 1 else ''} ha{'ve' if count != 1 else 's'} webhooks of "
        f"{'their' if count != 1 else 'its'} own, which Twilio fires instead of the account's: the gateway gets no "
        f"webhooks for {'their' if count != 1 else 'its'} conversations",
        file=sys.stderr,
    )
    for hidden in report.hidden:
        print(f"  {_service_name(hidden.service)}: {hidden.why()}", file=sys.stderr)
        print(f"    fix: {PROG} webhooks install --url {args.url} --service {hidden.service.sid}", file=sys.stderr)
    print(f"  or all at once: {PROG} webhooks install --url {args.url} --services", file=sys.stderr)
    return 1


def _service_name(service: Any) -> str:
    name = getattr(service, "friendly_name", None)
    return f"{service.sid} ({name})" if name else service.sid


def _describe(config: object) -> str:
    return (
        f"post_webhook_url={getattr(config, 'post_webhook_url', None)!r} "
        f"method={getattr(config, 'method', None)!r} filters={getattr(config, 'filters', None)!r}"
    )


async def _migrate(store_url: str) -> str:
    from delivery_gateway.ledger.sql import SqlLedger

    ledger = SqlLedger(store_url)
    await ledger.start()  # migrates
    try:
        result = ledger.migration
        assert result is not None
        if result.changed:
            return f"ledger {ledger.store.display}: migrated from {result.before or 'nothing'} to {result.after}"
        return f"ledger {ledger.store.display}: already at revision {result.after}"
    finally:
        await ledger.close()


def cmd_migrate(args: argparse.Namespace) -> None:
    from delivery_gateway.ledger import LedgerUnavailable

    overrides = {"DELIVERY_GATEWAY_STORE_URL": args.store_url} if args.store_url else {}
    settings = load_settings(**overrides)
    try:
        print(asyncio.run(_migrate(settings.store_url)))
    except (ValueError, LedgerUnavailable) as exc:
        raise ConfigError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="GraphQL gateway for Twilio Conversations delivery state")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_address(sub: argparse.ArgumentParser, port: int) -> argparse.ArgumentParser:
        sub.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
        sub.add_argument("--port", type=int, default=port, help=f"port to bind (default {port})")
        return sub

    serve = with_address(commands.add_parser("serve", help="run the gateway against Twilio (env config)"), 8000)
    serve.set_defaults(handler=cmd_serve)

    demo = with_address(commands.add_parser("demo", help="gateway + built-in emulator, no credentials"), 8000)
    demo.add_argument("--seed", type=int, default=7, help="seed for the emulator's data and simulator")
    demo.add_argument(
        "--emulator-port", type=int, default=0, help="port of the built-in emulator on 127.0.0.1 (default 0: any free)"
    )
    demo.set_defaults(handler=cmd_demo)

    emulator = with_address(commands.add_parser("emulator", help="the Twilio Conversations emulator alone"), 8099)
    emulator.add_argument("--seed", type=int, default=7)
    emulator.add_argument("--empty", action="store_true", help="start without seed data")
    emulator.set_defaults(handler=cmd_emulator)

    migrate = commands.add_parser("migrate", help="create or upgrade the ledger's schema (the gateway also does it)")
    migrate.add_argument(
        "--store-url", default=None, help="the ledger to migrate (default: DELIVERY_GATEWAY_STORE_URL)"
    )
    migrate.set_defaults(handler=cmd_migrate)

    webhooks = commands.add_parser("webhooks", help="manage Twilio's webhook configuration")
    webhook_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    install = webhook_commands.add_parser("install", help="point Twilio's post-event webhook at this gateway")
    install.add_argument("--url", required=True, help="the public URL of /webhooks/twilio")
    install.add_argument("--service", default=None, help="a Conversation Service SID (IS…); default: account")
    install.add_argument(
        "--services",
        action="store_true",
        help="also install on every service whose own webhooks hide the account's (replaces their post-event URL)",
    )
    install.set_defaults(handler=cmd_webhooks_install)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
