"""`UpstreamClient`: the `ConversationsAPI` over the official twilio SDK's async API, in both scopes.

The chat screen's reads (a conversation, its participants, a messages page, each message's receipts: up to 53
calls per cold screen) are sent through the same HTTP client with the SDK's own headers and credentials, and their
JSON is read straight into records (`mapping.from_payload`): the SDK's instance and page objects parse every date
with `strptime` and build a Request, headers and a user agent per call: about 30 ms of CPU for those 53 calls against
21 ms read directly (docs/architecture.md, "How a call reaches Twilio"). Every other call goes through the SDK.

Never returns SDK objects (records only) and never raises twilio exceptions: failures are `UpstreamError`s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from delivery_gateway.kernel import sids
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.records import (
    ConfigurationRecord,
    ConversationRecord,
    MessageRecord,
    Page,
    ParticipantRecord,
    ReceiptRecord,
    Record,
    ServiceRecord,
    WebhookConfigRecord,
)
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.kernel.sids import InvalidSid, require_sid
from delivery_gateway.upstream import mapping
from delivery_gateway.upstream.api import TWILIO_RECEIPTS_MAX_PAGE_SIZE
from delivery_gateway.upstream.backoff import RetryPolicy
from delivery_gateway.upstream.breaker import CircuitBreaker
from delivery_gateway.upstream.calls import UpstreamCallLog
from delivery_gateway.upstream.errors import UpstreamError
from delivery_gateway.upstream.http import GatewayHttpClient, error_for
from delivery_gateway.upstream.routes import route_of

_logger = logging.getLogger("delivery_gateway.upstream.client")

T = TypeVar("T")
Item = TypeVar("Item", bound=Record)

# The SDK reads TWILIO_* (edge, region, credentials) from `environment or os.environ`: an empty dict would
# still mean os.environ, so it gets a non-empty mapping with nothing it looks for.
_NO_ENVIRONMENT = {"DELIVERY_GATEWAY_SETTINGS_ONLY": "1"}

# Placeholder credentials for `demo` mode against the emulator only.
_DEMO_ACCOUNT_SID = "AC" + "0" * 32
_DEMO_AUTH_TOKEN = "demo"


def _sdk_error(exc: Exception) -> Exception | None:
    """The `UpstreamError` for an error the HTTP layer did not already type (it types every non-2xx it sees), or
    None for one that goes on as it is (an `UpstreamError` already, an invalid SID, anything else)."""
    if isinstance(exc, UpstreamError | InvalidSid):
        return None
    if isinstance(exc, TwilioRestException):
        code = exc.code if isinstance(exc.code, int) else None
        return error_for(
            exc.status, method=exc.method or "?", route=route_of(exc.uri or ""), twilio_code=code, detail=exc.msg
        )
    if isinstance(exc, TwilioException | ValueError):  # ValueError: a body that is not JSON
        return UpstreamError(f"unreadable upstream response: {exc}")
    return None


def _unset(value: Any) -> Any:
    return values.unset if value is None else value


class UpstreamClient:
    """Twilio Conversations v1, async. `service_sid=None` is the default scope (`/v1/Conversations/...`),
    else the service scope (`/v1/Services/{ChatServiceSid}/Conversations/...`).

        async with UpstreamClient(settings, metrics=metrics) as upstream:
            page = await upstream.list_messages("CH...", order="desc", page_size=20)

    `calls` is the `UpstreamCallLog` of every HTTP attempt (retries included); `http` the transport.
    """

    PAGE_SIZE_ALL = TWILIO_RECEIPTS_MAX_PAGE_SIZE  # the "all pages" reads: Receipts allow at most 50 per page
    MAX_PAGES = 1000  # guard against a looping PageToken

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        calls: UpstreamCallLog | None = None,
        breaker: CircuitBreaker | None = None,
        retry_policy: RetryPolicy | None = None,
        coalesce_reads: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.calls = calls if calls is not None else UpstreamCallLog()
        self.http = GatewayHttpClient(
            connect_timeout=settings.upstream_connect_timeout,
            read_timeout=settings.upstream_read_timeout,
            max_retries=settings.upstream_max_retries,
            concurrency=settings.upstream_concurrency,
            metrics=self.metrics,
            calls=self.calls,
            breaker=breaker if breaker is not None else self._breaker_from(settings),
            retry_policy=retry_policy,
            rate_limit_budget=settings.upstream_rate_limit_budget,
            coalesce_reads=coalesce_reads,
        )
        self._twilio: Client | None = None
        self._v1_url = ""  # the Conversations v1 root URL, with a trailing slash
        self._read_headers: dict[str, str] = {}  # the SDK's headers for a GET (user agent, Accept, ...)
        self._auth: tuple[str, str] | None = None

    @staticmethod
    def _breaker_from(settings: Settings) -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=settings.upstream_breaker_failures,
            cooldown=settings.upstream_breaker_cooldown,
        )

    # -- lifecycle -------------------------------------------------------------------------------------

    def _credentials(self) -> tuple[str, str, str]:
        """(username, password, account_sid): TWILIO_API_KEY + TWILIO_API_SECRET when set (Twilio's recommended
        REST credentials), else the account SID + auth token (Settings.rest_credentials)."""
        s = self.settings
        account_sid = s.twilio_account_sid
        credentials = s.rest_credentials()
        if credentials is not None and account_sid:
            return credentials[0], credentials[1], account_sid
        if s.demo_mode:
            sid = account_sid or _DEMO_ACCOUNT_SID
            return sid, s.auth_token or _DEMO_AUTH_TOKEN, sid
        raise ValueError(f"missing Twilio credentials: {', '.join(s.missing_credentials())}")

    async def start(self) -> None:
        """Open the HTTP session (needs the running loop) and build the SDK client. Idempotent."""
        if self._twilio is not None:
            return
        username, password, account_sid = self._credentials()
        await self.http.start()
        # Explicit credentials: the SDK must never fall back to reading the environment itself.
        client = Client(username, password, account_sid=account_sid, http_client=self.http, environment=_NO_ENVIRONMENT)
        client.conversations.base_url = self.settings.twilio_base_url
        # The hot reads send what the SDK would send: its headers, its credentials, its URL for the version.
        self._read_headers = client.get_headers("GET", {"Accept": "application/json"})
        self._auth = client.get_auth(None)
        self._v1_url = client.conversations.v1.absolute_url("")
        if not self._v1_url.endswith("/"):
            self._v1_url += "/"
        self._twilio = client

    async def close(self) -> None:
        self._twilio = None
        await self.http.close()

    async def __aenter__(self) -> UpstreamClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- plumbing --------------------------------------------------------------------------------------

    @property
    def _v1(self) -> Any:
        if self._twilio is None:
            raise RuntimeError("UpstreamClient used before `await start()` (or after close())")
        return self._twilio.conversations.v1

    # SIDs are checked before they reach a URL: the SDK formats them into paths unescaped, so a crafted
    # "SID" could otherwise point a request at another scope's resource.

    def _service(self, service_sid: str | None) -> Any:
        return self._v1.services(require_sid("service_sid", service_sid, sids.SERVICE)) if service_sid else None

    def _conversations(self, service_sid: str | None) -> Any:
        service = self._service(service_sid)
        return service.conversations if service is not None else self._v1.conversations

    def _conversation(self, conversation_sid: str, service_sid: str | None) -> Any:
        return self._conversations(service_sid)(require_sid("conversation_sid", conversation_sid, sids.CONVERSATION))

    def _messages(self, conversation_sid: str, service_sid: str | None) -> Any:
        return self._conversation(conversation_sid, service_sid).messages

    def _receipts(self, conversation_sid: str, message_sid: str, service_sid: str | None) -> Any:
        message = self._messages(conversation_sid, service_sid)(require_sid("message_sid", message_sid, sids.MESSAGE))
        return message.delivery_receipts

    def _webhooks(self, service_sid: str | None) -> Any:
        service = self._service(service_sid)
        return (service.configuration if service is not None else self._v1.configuration).webhooks()

    @asynccontextmanager
    async def _sdk_errors(self) -> AsyncIterator[None]:
        """Errors the HTTP layer did not already type (it types every non-2xx it sees): `_sdk_error`."""
        try:
            yield
        except Exception as exc:
            error = _sdk_error(exc)
            if error is None:
                raise
            raise error from exc

    # Hot reads: the same HTTP client (counting, single-flight, breaker, retries, rate-limit budget), the SDK's
    # headers and credentials, Twilio's JSON read into records once.

    def _scope_path(self, service_sid: str | None) -> str:
        if service_sid:
            return f"Services/{require_sid('service_sid', service_sid, sids.SERVICE)}/Conversations"
        return "Conversations"

    def _conversation_path(self, conversation_sid: str, service_sid: str | None) -> str:
        sid = require_sid("conversation_sid", conversation_sid, sids.CONVERSATION)
        return f"{self._scope_path(service_sid)}/{sid}"

    async def _read(self, path: str, params: dict[str, object] | None) -> tuple[int, Any]:
        """(status, JSON) of one GET below the v1 root. Non-2xx answers are raised typed by the HTTP client."""
        if self._twilio is None:
            raise RuntimeError("UpstreamClient used before `await start()` (or after close())")
        url = self._twilio.get_hostname(self._v1_url + path)
        response = await self.http.request("GET", url, params=params, headers=self._read_headers, auth=self._auth)
        return response.status_code, json.loads(response.text)

    async def _fetch_direct(self, path: str, record_cls: type[Item], service_sid: str | None) -> Item:
        try:  # as `_sdk_errors`, without a context manager per call
            status, payload = await self._read(path, None)
            if not 200 <= status < 300 or not isinstance(payload, dict):
                raise UpstreamError(f"unreadable upstream response: HTTP {status}, not a resource")
            return mapping.from_payload(record_cls, payload, service_sid)
        except Exception as exc:
            error = _sdk_error(exc)
            if error is None:
                raise
            raise error from exc

    async def _page_direct(
        self,
        path: str,
        record_cls: type[Item],
        service_sid: str | None,
        page_size: int,
        page_token: str | None,
        **params: object,
    ) -> Page[Item]:
        query: dict[str, object] = {**params, "PageSize": page_size}
        if page_token is not None:
            query["PageToken"] = page_token
        try:  # as `_sdk_errors`, without a context manager per call
            status, payload = await self._read(path, query)
            if status != 200:  # as the SDK's Page: a page is a 200 answer
                raise UpstreamError(f"unreadable upstream response: HTTP {status} for a page")
            try:
                items = [mapping.from_payload(record_cls, item, service_sid) for item in mapping.page_items(payload)]
            except mapping.UnreadablePage as exc:
                raise UpstreamError(f"unreadable upstream response: {exc}") from exc
            next_token, previous_token = mapping.page_tokens(payload)
            return Page(items, page_size, next_page_token=next_token, previous_page_token=previous_token)
        except Exception as exc:
            error = _sdk_error(exc)
            if error is None:
                raise
            raise error from exc

    async def _all_direct(self, path: str, record_cls: type[Item], service_sid: str | None) -> list[Item]:
        items: list[Item] = []
        token: str | None = None
        for _ in range(self.MAX_PAGES):
            page = await self._page_direct(path, record_cls, service_sid, self.PAGE_SIZE_ALL, token)
            items.extend(page.items)
            token = page.next_page_token
            if token is None:
                return items
        raise UpstreamError(f"more than {self.MAX_PAGES} pages; refusing to read on")

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        async with self._sdk_errors():
            return await op()

    async def _page(
        self, lst: Any, convert: Callable[[Any], Item], page_size: int, page_token: str | None, **params: Any
    ) -> Page[Item]:
        async with self._sdk_errors():
            page = await lst.page_async(page_size=page_size, page_token=_unset(page_token), **params)
            items = [convert(instance) for instance in page]
            return Page(
                items=items,
                page_size=page_size,
                next_page_token=mapping.page_token(page.next_page_url),
                previous_page_token=mapping.page_token(page.previous_page_url),
            )

    async def _all(self, lst: Any, convert: Callable[[Any], Item]) -> list[Item]:
        items: list[Item] = []
        token: str | None = None
        for _ in range(self.MAX_PAGES):
            page = await self._page(lst, convert, self.PAGE_SIZE_ALL, token)
            items.extend(page.items)
            token = page.next_page_token
            if token is None:
                return items
        raise UpstreamError(f"more than {self.MAX_PAGES} pages; refusing to read on")

    # -- ConversationsAPI ------------------------------------------------------------------------------

    async def fetch_conversation(self, sid: str, *, service_sid: str | None = None) -> ConversationRecord:
        return await self._fetch_direct(self._conversation_path(sid, service_sid), ConversationRecord, service_sid)

    async def list_conversations(
        self,
        *,
        service_sid: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
        state: str | None = None,
    ) -> Page[ConversationRecord]:
        return await self._page(
            self._conversations(service_sid),
            lambda i: mapping.conversation(i, service_sid),
            page_size,
            page_token,
            state=_unset(state),
        )

    async def fetch_message(self, conversation_sid: str, sid: str, *, service_sid: str | None = None) -> MessageRecord:
        context = self._messages(conversation_sid, service_sid)(require_sid("sid", sid, sids.MESSAGE))
        instance = await self._call(context.fetch_async)
        return mapping.message(instance, service_sid)

    async def list_messages(
        self,
        conversation_sid: str,
        *,
        service_sid: str | None = None,
        order: str = "desc",
        page_size: int = 50,
        page_token: str | None = None,
    ) -> Page[MessageRecord]:
        path = self._conversation_path(conversation_sid, service_sid) + "/Messages"
        return await self._page_direct(path, MessageRecord, service_sid, page_size, page_token, Order=order)

    async def create_message(
        self,
        conversation_sid: str,
        *,
        service_sid: str | None = None,
        author: str | None = None,
        body: str | None = None,
        media_sid: str | None = None,
        attributes: str | None = None,
        webhook_enabled: bool = False,
    ) -> MessageRecord:
        instance = await self._call(
            lambda: self._messages(conversation_sid, service_sid).create_async(
                x_twilio_webhook_enabled="true" if webhook_enabled else values.unset,
                author=_unset(author),
                body=_unset(body),
                media_sid=_unset(media_sid),
                attributes=_unset(attributes),
            )
        )
        return mapping.message(instance, service_sid)

    async def list_participants(
        self, conversation_sid: str, *, service_sid: str | None = None
    ) -> list[ParticipantRecord]:
        path = self._conversation_path(conversation_sid, service_sid) + "/Participants"
        return await self._all_direct(path, ParticipantRecord, service_sid)

    async def list_receipts(
        self, conversation_sid: str, message_sid: str, *, service_sid: str | None = None
    ) -> list[ReceiptRecord]:
        message = require_sid("message_sid", message_sid, sids.MESSAGE)
        path = f"{self._conversation_path(conversation_sid, service_sid)}/Messages/{message}/Receipts"
        return await self._all_direct(path, ReceiptRecord, service_sid)

    async def fetch_receipt(
        self, conversation_sid: str, message_sid: str, sid: str, *, service_sid: str | None = None
    ) -> ReceiptRecord:
        context = self._receipts(conversation_sid, message_sid, service_sid)(require_sid("sid", sid, sids.RECEIPT))
        instance = await self._call(context.fetch_async)
        return mapping.receipt(instance, service_sid)

    async def fetch_configuration(self) -> ConfigurationRecord:
        instance = await self._call(lambda: self._v1.configuration().fetch_async())
        return mapping.configuration(instance)

    async def list_services(self) -> list[ServiceRecord]:
        return await self._all(self._v1.services, mapping.service)

    async def fetch_webhook_config(self, *, service_sid: str | None = None) -> WebhookConfigRecord:
        instance = await self._call(lambda: self._webhooks(service_sid).fetch_async())
        return mapping.webhook_config(instance, service_sid)

    async def update_webhook_config(
        self,
        *,
        service_sid: str | None = None,
        post_webhook_url: str | None = None,
        method: str | None = None,
        filters: list[str] | None = None,
    ) -> WebhookConfigRecord:
        instance = await self._call(
            lambda: self._webhooks(service_sid).update_async(
                post_webhook_url=_unset(post_webhook_url), method=_unset(method), filters=_unset(filters)
            )
        )
        return mapping.webhook_config(instance, service_sid)
