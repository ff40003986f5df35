"""The Starlette app factory: settings → backends → routes and middleware, assembled in one visible place.

Never holds request logic: every route's behaviour lives in its own module; this file only wires and orders them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from delivery_gateway.auth import AuthMiddleware, bearer_matches
from delivery_gateway.cache import ResourceCache
from delivery_gateway.cache.rate_limits import RateLimiter
from delivery_gateway.cache.responses import ResponseCache
from delivery_gateway.graphql.cached_answers import CachedAnswersMiddleware
from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.graphql.view import create_graphql_app
from delivery_gateway.http.drain import OpenStreams, StreamDrainMiddleware
from delivery_gateway.http.forwarded import ForwardedHeadersMiddleware
from delivery_gateway.http.guards import OriginPolicy, guard_middleware, http_only
from delivery_gateway.http.request_log import RequestLogMiddleware
from delivery_gateway.http.transport_send import TransportSendMiddleware
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.redact import mask_url, scrub, url_secrets
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import PruneResult, create_ledger
from delivery_gateway.pages import page_routes
from delivery_gateway.pubsub import create_pubsub
from delivery_gateway.reconcile import Reconciler
from delivery_gateway.upstream.api import ConversationsAPI
from delivery_gateway.upstream.client import UpstreamClient
from delivery_gateway.upstream.probe import CredentialsProbe
from delivery_gateway.webhooks import WEBHOOK_PATH, WebhookIngest

log = logging.getLogger("delivery_gateway")

GRAPHQL_PATH = "/graphql"
READINESS_TIMEOUT = 2.0
OPTIONAL_BACKENDS = frozenset({"cache"})
BACKEND_START_TIMEOUT = 30.0  # seconds a backend may take to connect at start-up
STREAMS_CLOSE_TIMEOUT = 5.0  # seconds closed subscriptions get to finish on shutdown


class BackendUnavailable(Exception):
    """A backend could not be started: names the setting that configures it and its URL (password masked)."""

    def __init__(self, variable: str, url: str, cause: BaseException) -> None:
        if isinstance(cause, TimeoutError) and not str(cause):
            reason = f"no answer within {BACKEND_START_TIMEOUT:g} s"
        else:
            reason = scrub(f"{type(cause).__name__}: {cause}".rstrip(": "), url_secrets(url))
        super().__init__(f"{variable}: cannot use {mask_url(url)} ({reason})")
        self.variable = variable


def build_services(settings: Settings, *, upstream: ConversationsAPI | None = None) -> GatewayServices:
    """Every per-process backend, chosen by the settings' URLs; nothing is connected until `Gateway.start`."""
    metrics = Metrics()
    responses = None
    if settings.response_cache:
        responses = ResponseCache.from_url(
            settings.response_cache_store_url,
            max_ttl=settings.response_cache_ttl,
            max_entries=settings.response_cache_max_entries,
            metrics=metrics,
        )
    return GatewayServices(
        settings=settings,
        upstream=upstream if upstream is not None else UpstreamClient(settings, metrics=metrics),
        cache=ResourceCache.from_url(settings.cache_url, metrics=metrics),
        metrics=metrics,
        ledger=create_ledger(settings.store_url),
        pubsub=create_pubsub(settings.pubsub_url, queue_size=settings.subscriber_queue_size, metrics=metrics),
        limits=RateLimiter.from_url(settings.cache_url),
        responses=responses,
    )


class Gateway:
    """One gateway process: its services, webhook ingest and GraphQL endpoint, started and closed together."""

    prune_first_delay = 60.0  # seconds after start before the first ledger pruning
    prune_interval = 3600.0  # seconds between prunings

    def __init__(self, settings: Settings, *, upstream: ConversationsAPI | None = None) -> None:
        self.settings = settings
        self.services = build_services(settings, upstream=upstream)
        services = self.services
        self.ingest = WebhookIngest(
            settings=settings,
            ledger=services.ledger,
            pubsub=services.pubsub,
            cache=services.cache,
            metrics=services.metrics,
            responses=services.responses,
        )
        self.reconciler = Reconciler(
            settings=settings,
            ledger=services.ledger,
            upstream=services.upstream,
            apply=self.ingest.apply,  # what it finds is applied exactly like a webhook
            metrics=services.metrics,
        )
        self.graphql = create_graphql_app(services)
        self.streams = OpenStreams()  # open WebSockets and event streams, closed first on shutdown
        self.credentials_probe = CredentialsProbe(services.upstream) if settings.ready_checks_upstream else None
        self.started = False
        self._pruner: asyncio.Task[None] | None = None

    async def prune_ledger(self, now: datetime | None = None) -> PruneResult:
        """One retention pass: drop what the ledger recorded more than `ledger_retention_days` ago."""
        now = now if now is not None else datetime.now(UTC)
        result = await self.services.ledger.prune(now - timedelta(days=self.settings.ledger_retention_days))
        if result.total:
            log.info(
                "ledger pruned: %d changes (through seq %d), %d dedupe keys, %d history entries",
                result.changes,
                result.pruned_through,
                result.dedupe_keys,
                result.history,
            )
        return result

    async def _prune_periodically(self) -> None:
        delay = self.prune_first_delay
        while True:
            await asyncio.sleep(delay)
            delay = self.prune_interval
            try:
                await self.prune_ledger()
            except asyncio.CancelledError:
                raise
            except Exception:  # never fatal: the next run tries again
                log.exception("ledger pruning failed")

    async def start(self) -> None:
        """Connect every backend, then reprocess what a previous run left in the webhook inbox. Idempotent.

        A backend that cannot be reached raises `BackendUnavailable` naming its setting, after closing whatever
        was already opened (no half-started process keeps sessions or connections open).
        """
        if self.started:
            return
        services, settings = self.services, self.settings
        steps: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
            ("DELIVERY_GATEWAY_STORE_URL", settings.store_url, services.ledger.start),
            ("DELIVERY_GATEWAY_PUBSUB_URL", settings.pubsub_url, services.pubsub.start),
            ("DELIVERY_GATEWAY_PUBSUB_URL", settings.pubsub_url, self._start_response_cache),
            ("DELIVERY_GATEWAY_STORE_URL", settings.store_url, self._recover_inbox),
        ]
        try:
            await services.upstream.start()  # opens an HTTP session; fails only without credentials
            for variable, url, start in steps:
                try:
                    async with asyncio.timeout(BACKEND_START_TIMEOUT):
                        await start()
                except Exception as exc:
                    raise BackendUnavailable(variable, url, exc) from exc
        except BaseException:
            await self.close()
            raise
        if services.cache is not None:
            try:
                await asyncio.wait_for(services.cache.ping(), READINESS_TIMEOUT)
            except Exception as exc:  # optional: reads fall through to Twilio until it answers
                log.warning("%s", BackendUnavailable("DELIVERY_GATEWAY_CACHE_URL", settings.cache_url, exc))
        if self._pruner is None:
            self._pruner = asyncio.create_task(self._prune_periodically(), name="ledger-pruner")
        await self.reconciler.start()  # its first pass catches up on what changed while no process reconciled
        self.started = True

    async def _start_response_cache(self) -> None:
        """Listens for other replicas' invalidations before the first request can be answered from it."""
        if self.services.responses is not None:
            await self.services.responses.start(self.services.pubsub)

    async def _recover_inbox(self) -> None:
        recovered = await self.ingest.start()
        if recovered:
            log.info("reprocessed %d webhook events left by the previous run", recovered)

    async def close_streams(self, grace: float = STREAMS_CLOSE_TIMEOUT) -> int:
        """First step of a graceful shutdown: WebSockets close with 1001 "going away", event streams end.

        Clients reconnect (to another replica) and resume from their cursors. Returns how many were closed.
        """
        return await self.streams.close_all(grace=grace)

    async def close(self) -> None:
        """Close in reverse order; one failing close never keeps the others open."""
        self.started = False
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pruner
            self._pruner = None
        services = self.services
        closers: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("reconciler", self.reconciler.close),
            ("webhook ingest", self.ingest.close),
            ("pub/sub", services.pubsub.close),
            ("ledger", services.ledger.close),
            ("rate limits", services.limits.close),
            ("upstream", services.upstream.close),
        ]
        if services.cache is not None:
            closers.insert(4, ("cache", services.cache.close))
        if services.responses is not None:  # before pub/sub: its listener must not outlive the broker
            closers.insert(2, ("response cache", services.responses.close))
        for name, close in closers:
            try:
                await close()
            except Exception:
                log.exception("error while closing the %s", name)

    async def readiness(self) -> dict[str, str]:
        """Each backend's state. The ledger and pub/sub are required ('ok' or why not); the cache is optional:
        when it is down, reads fall through to Twilio, so it reports 'degraded' without failing readiness."""
        report = {"started": "ok" if self.started else "starting"}
        services = self.services
        checks: dict[str, Callable[[], Awaitable[None]]] = {
            "ledger": services.ledger.ping,
            "pubsub": services.pubsub.ping,
        }
        if services.cache is not None:
            checks["cache"] = services.cache.ping
        for name, ping in checks.items():
            try:
                await asyncio.wait_for(ping(), READINESS_TIMEOUT)
                report[name] = "ok"
            except Exception as exc:
                state = "degraded" if name in OPTIONAL_BACKENDS else "unavailable"
                report[name] = f"{state}: {type(exc).__name__}"
        if self.credentials_probe is not None:  # DELIVERY_GATEWAY_READY_CHECKS_UPSTREAM
            try:
                report["upstream"] = await self.credentials_probe.check()
            except Exception as exc:
                report["upstream"] = f"degraded: {type(exc).__name__}"
        return report

    @staticmethod
    def is_ready(report: dict[str, str]) -> bool:
        return all(state == "ok" or state.startswith("degraded") for state in report.values())


def create_app(settings: Settings | None = None, *, upstream: ConversationsAPI | None = None) -> Starlette:
    """The gateway's ASGI app. `upstream` replaces the Twilio client (tests pass a fake or a counting wrapper)."""
    settings = settings if settings is not None else Settings()
    gateway = Gateway(settings, upstream=upstream)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        report = await gateway.readiness()
        ready = gateway.is_ready(report)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": report}, status_code=200 if ready else 503
        )

    async def metrics(request: Request) -> Response:
        key = settings.metrics_key.get_secret_value() if settings.metrics_key else None
        if key is not None and not bearer_matches(request.headers.get("authorization"), key):
            refusal = {"error": "Unauthorized: /metrics needs `Authorization: Bearer <DELIVERY_GATEWAY_METRICS_KEY>`"}
            return JSONResponse(refusal, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        body, content_type = gateway.services.metrics.render()
        return Response(body, media_type=content_type)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    routes = [
        Route(GRAPHQL_PATH, gateway.graphql),  # every method: the view refuses others GraphQL-shaped (405)
        WebSocketRoute(GRAPHQL_PATH, gateway.graphql),
        *gateway.ingest.routes(),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *page_routes(settings, graphql_path=GRAPHQL_PATH),
    ]
    # Outermost: every later layer (webhook signatures, origin checks, logs) sees the request the proxy received.
    forwarded = [Middleware(ForwardedHeadersMiddleware, trusted=settings.forwarded_allow_ips)]
    middleware = [
        Middleware(TransportSendMiddleware),  # a WebSocket's own send, for a live hub's frames (no frame of its own)
        *(forwarded if settings.forwarded_allow_ips else []),
        Middleware(RequestLogMiddleware),
        # A signed URL-encoded webhook's whole path: one layer applying the guards' rules (webhooks/front.py).
        http_only(gateway.ingest.front_middleware(OriginPolicy.from_settings(settings).cors_headers)),
        # A cached answer's whole hit path: one layer applying the guards' rules (graphql/cached_answers.py).
        http_only(
            Middleware(CachedAnswersMiddleware, front=gateway.graphql.responses, settings=settings, path=GRAPHQL_PATH)
        ),
        Middleware(StreamDrainMiddleware, streams=gateway.streams),
        *guard_middleware(
            settings,
            webhook_paths=[WEBHOOK_PATH],
            graphql_paths=[GRAPHQL_PATH],
            authentication=Middleware(AuthMiddleware.from_settings, settings=settings, paths=[GRAPHQL_PATH]),
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.gateway = gateway
    return app
