"""Gateway configuration, read once from the environment and `.env`.

Never reads the environment anywhere else: every module gets its settings passed in, so tests build their own.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_BACKEND_SCHEMES = {
    "cache_url": {"memory", "redis", "rediss"},
    "response_cache_url": {"memory", "redis", "rediss"},
    "pubsub_url": {"memory", "redis", "rediss"},
    "store_url": {"memory", "sqlite", "postgresql", "postgres"},
}
# The ledger moved off Redis; Redis stays the cache and the pub/sub. One line, pointing at the way out.
REDIS_LEDGER_RETIRED = (
    "redis:// is no longer a ledger store (Redis stays the cache and the pub/sub); use sqlite:///path or "
    "postgresql://user@host:port/db, see README.md, 'Moving off the Redis ledger'"
)


class Settings(BaseSettings):
    """All knobs of one gateway process.

    Backends are picked by URL scheme (memory://, redis://, sqlite:///path, postgresql://), the way
    encode/broadcaster does.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    # The auth token signs Twilio's webhooks (always needed) and, without an API key pair, authenticates REST calls.
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    # REST credentials only (Twilio's recommended Basic auth: API key SID + secret). Access Token signing keys are
    # DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS: one meaning per setting.
    twilio_api_key: str | None = Field(default=None, alias="TWILIO_API_KEY")
    twilio_api_secret: SecretStr | None = Field(default=None, alias="TWILIO_API_SECRET")

    twilio_base_url: str = Field(default="https://conversations.twilio.com", alias="DELIVERY_GATEWAY_TWILIO_BASE_URL")
    cache_url: str = Field(default="memory://", alias="DELIVERY_GATEWAY_CACHE_URL")
    pubsub_url: str = Field(default="memory://", alias="DELIVERY_GATEWAY_PUBSUB_URL")
    store_url: str = Field(default="sqlite:///delivery-gateway.sqlite3", alias="DELIVERY_GATEWAY_STORE_URL")
    ledger_retention_days: int = Field(default=30, ge=1, alias="DELIVERY_GATEWAY_LEDGER_RETENTION_DAYS")
    public_url: str | None = Field(default=None, alias="DELIVERY_GATEWAY_PUBLIC_URL")
    # Proxies (addresses, CIDR networks, or *) whose X-Forwarded-Proto/-Host/-For the gateway honours
    # (http/forwarded.py); empty: forwarded headers are ignored.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS"
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list, alias="DELIVERY_GATEWAY_API_KEYS")

    # Upstream behaviour.
    # 64: a chat screen's whole second round (one Receipts list per message of a 50-message page) plus its first
    # round (conversation, participants, messages page) fits at once; Twilio's account concurrency limit (HTTP 429,
    # error 20429) is shared by every replica (docs/deployment.md, "Twilio's rate limits").
    upstream_concurrency: int = Field(default=64, ge=1, le=1024, alias="DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY")
    upstream_connect_timeout: float = Field(default=3.0, gt=0, alias="DELIVERY_GATEWAY_UPSTREAM_CONNECT_TIMEOUT")
    upstream_read_timeout: float = Field(default=10.0, gt=0, alias="DELIVERY_GATEWAY_UPSTREAM_READ_TIMEOUT")
    upstream_max_retries: int = Field(default=3, ge=0, le=10, alias="DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES")
    # Seconds a read answered 429 without Retry-After keeps retrying (growing, jittered waits) before
    # UPSTREAM_RATE_LIMITED; Twilio's limits count per second, so this should span a few. 0: no such retries.
    upstream_rate_limit_budget: float = Field(
        default=3.0, ge=0, le=60, alias="DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET"
    )
    # Circuit breaker: this many consecutive 5xx/timeouts/resets open it for `cooldown` seconds, then one probe.
    upstream_breaker_failures: int = Field(default=5, ge=1, alias="DELIVERY_GATEWAY_UPSTREAM_BREAKER_FAILURES")
    upstream_breaker_cooldown: float = Field(default=5.0, gt=0, alias="DELIVERY_GATEWAY_UPSTREAM_BREAKER_COOLDOWN")

    # Reconciliation (reconcile/): every this many seconds, receipts seen in a state that can still change are
    # re-read from Twilio's REST API, so a lost webhook never leaves a state wrong for long; 0 switches it off.
    reconcile_seconds: float = Field(default=60.0, ge=0, le=86400, alias="DELIVERY_GATEWAY_RECONCILE_SECONDS")
    # How long after its creation a receipt is still re-read (seconds; Twilio's own retries end well before).
    reconcile_window: float = Field(default=86400.0, gt=0, alias="DELIVERY_GATEWAY_RECONCILE_WINDOW")
    # Concurrent receipts lists the reconciler may have in flight; None: a quarter of UPSTREAM_CONCURRENCY.
    reconcile_concurrency: int | None = Field(default=None, ge=1, alias="DELIVERY_GATEWAY_RECONCILE_CONCURRENCY")

    # Cache TTLs, seconds, per resource kind.
    ttl_conversation: float = Field(default=60.0, ge=0, alias="DELIVERY_GATEWAY_TTL_CONVERSATION")
    ttl_participants: float = Field(default=60.0, ge=0, alias="DELIVERY_GATEWAY_TTL_PARTICIPANTS")
    ttl_messages: float = Field(default=30.0, ge=0, alias="DELIVERY_GATEWAY_TTL_MESSAGES")
    ttl_receipts: float = Field(default=30.0, ge=0, alias="DELIVERY_GATEWAY_TTL_RECEIPTS")
    ttl_receipts_terminal: float = Field(default=3600.0, ge=0, alias="DELIVERY_GATEWAY_TTL_RECEIPTS_TERMINAL")

    # Whole-response cache of queries (cache/responses.py): on by default, in the resource cache's store unless
    # named; an answer lives at most this many seconds, and never beyond the resources it was built from.
    response_cache: bool = Field(default=True, alias="DELIVERY_GATEWAY_RESPONSE_CACHE")
    response_cache_url: str | None = Field(default=None, alias="DELIVERY_GATEWAY_RESPONSE_CACHE_URL")
    response_cache_ttl: float = Field(default=60.0, gt=0, alias="DELIVERY_GATEWAY_RESPONSE_CACHE_TTL")
    response_cache_max_entries: int = Field(default=10_000, ge=1, alias="DELIVERY_GATEWAY_RESPONSE_CACHE_MAX_ENTRIES")

    # GraphQL surface.
    introspection: bool = Field(default=True, alias="DELIVERY_GATEWAY_INTROSPECTION")
    graphiql: bool = Field(default=True, alias="DELIVERY_GATEWAY_GRAPHIQL")
    legacy_graphql_ws: bool = Field(default=False, alias="DELIVERY_GATEWAY_LEGACY_GRAPHQL_WS")
    subscriber_queue_size: int = Field(default=256, ge=1, alias="DELIVERY_GATEWAY_SUBSCRIBER_QUEUE_SIZE")
    # permessage-deflate on WebSockets (browsers offer it). Off: a subscription's frames are a few hundred bytes of
    # JSON, while a compressing connection holds about 30 KB of zlib state and compresses every frame for itself
    # (a live hub's shared frame cannot be written to it as is: http/websocket.py).
    websocket_compression: bool = Field(default=False, alias="DELIVERY_GATEWAY_WEBSOCKET_COMPRESSION")

    # Set by `delivery-gateway demo` only: lets callers in without credentials.
    demo_mode: bool = Field(default=False, alias="DELIVERY_GATEWAY_DEMO_MODE")
    # The /demo chat page (static; it calls /graphql with the visitor's own token). None: on in demo mode only.
    demo_page: bool | None = Field(default=None, alias="DELIVERY_GATEWAY_DEMO_PAGE")

    # Access control and hardening (auth/, graphql/limits.py, http/).
    # The Twilio API keys whose Access Tokens callers may present: "SK…:secret,SK…:secret" (several for rotation).
    twilio_signing_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict, alias="DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS"
    )
    # Chat services whose tokens are accepted; empty: any service (a grant without one means the default service).
    chat_service_sids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="DELIVERY_GATEWAY_CHAT_SERVICE_SIDS"
    )
    # Audiences an Access Token carrying `aud` must name one of (tokens without `aud`, as Twilio's SDKs mint
    # them, are accepted); empty: tokens carrying `aud` are refused, being meant for someone else.
    token_audiences: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="DELIVERY_GATEWAY_TOKEN_AUDIENCES"
    )
    token_leeway: float = Field(default=10.0, ge=0, le=300, alias="DELIVERY_GATEWAY_TOKEN_LEEWAY")
    # Bearer key `/metrics` requires when set (for deployments whose port is reachable by others).
    metrics_key: SecretStr | None = Field(default=None, alias="DELIVERY_GATEWAY_METRICS_KEY")
    # resendMessage allowances, per message and per caller, in fixed windows (kept in the cache backend).
    resend_limit_per_message: int = Field(default=3, ge=1, alias="DELIVERY_GATEWAY_RESEND_LIMIT_PER_MESSAGE")
    resend_limit_per_caller: int = Field(default=30, ge=1, alias="DELIVERY_GATEWAY_RESEND_LIMIT_PER_CALLER")
    resend_window: float = Field(default=3600.0, gt=0, alias="DELIVERY_GATEWAY_RESEND_WINDOW")
    # Seconds a connection has to send a request's headers (from connecting, or from a request's first byte).
    header_timeout: float = Field(default=10.0, gt=0, le=300, alias="DELIVERY_GATEWAY_HEADER_TIMEOUT")
    max_body_bytes: int = Field(default=131072, ge=1024, alias="DELIVERY_GATEWAY_MAX_BODY_BYTES")
    max_webhook_bytes: int = Field(default=65536, ge=1024, alias="DELIVERY_GATEWAY_MAX_WEBHOOK_BYTES")
    body_read_timeout: float = Field(default=30.0, gt=0, alias="DELIVERY_GATEWAY_BODY_READ_TIMEOUT")
    max_query_depth: int = Field(default=10, ge=1, le=50, alias="DELIVERY_GATEWAY_MAX_QUERY_DEPTH")
    max_aliases: int = Field(default=30, ge=0, alias="DELIVERY_GATEWAY_MAX_ALIASES")
    max_tokens: int = Field(default=2000, ge=100, alias="DELIVERY_GATEWAY_MAX_TOKENS")
    max_page_size: int = Field(default=100, ge=1, le=1000, alias="DELIVERY_GATEWAY_MAX_PAGE_SIZE")
    max_query_cost: int = Field(default=1000, ge=1, alias="DELIVERY_GATEWAY_MAX_QUERY_COST")
    # Ledger queries one operation may run (deliveryReport, failedMessages, serviceDeliveryUpdates' replay).
    max_ledger_queries: int = Field(default=10, ge=1, alias="DELIVERY_GATEWAY_MAX_LEDGER_QUERIES")
    max_subscriptions_per_connection: int = Field(
        default=20, ge=1, alias="DELIVERY_GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION"
    )
    ws_init_timeout: float = Field(default=10.0, gt=0, alias="DELIVERY_GATEWAY_WS_INIT_TIMEOUT")
    # Browser origins allowed cross-origin (CORS and WebSocket); empty: same-origin only.
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="DELIVERY_GATEWAY_ALLOWED_ORIGINS"
    )

    # Operations: logs, readiness, shutdown (ops/, http/request_log.py, http/drain.py, upstream/probe.py).
    log_format: Literal["text", "json"] = Field(default="text", alias="DELIVERY_GATEWAY_LOG_FORMAT")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", alias="DELIVERY_GATEWAY_LOG_LEVEL")
    # /readyz also checks the Twilio credentials (one call a minute at most; only a 401/403 fails readiness).
    ready_checks_upstream: bool = Field(default=False, alias="DELIVERY_GATEWAY_READY_CHECKS_UPSTREAM")
    # On SIGTERM: seconds in-flight requests get to finish after subscriptions were closed.
    shutdown_timeout: int = Field(default=20, ge=1, le=600, alias="DELIVERY_GATEWAY_SHUTDOWN_TIMEOUT")

    @field_validator(
        "api_keys", "chat_service_sids", "allowed_origins", "token_audiences", "forwarded_allow_ips", mode="before"
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("chat_service_sids")
    @classmethod
    def _service_sids(cls, value: list[str]) -> list[str]:
        from delivery_gateway.kernel.sids import is_sid

        bad = [sid for sid in value if not is_sid(sid, "IS")]
        if bad:
            raise ValueError(f"{bad!r}: each must be 'IS' followed by 32 hex digits")
        return value

    @field_validator("twilio_signing_keys", mode="before")
    @classmethod
    def _split_signing_keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            key_sid, sep, secret = item.strip().partition(":")
            if not sep or not secret:
                raise ValueError("expected 'SK…:secret' pairs separated by commas")
            pairs[key_sid.strip()] = secret.strip()
        return pairs

    @field_validator("twilio_signing_keys")
    @classmethod
    def _signing_key_sids(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        from delivery_gateway.kernel.sids import is_sid

        bad = [sid for sid in value if not is_sid(sid, "SK")]
        if bad:
            raise ValueError(f"{bad!r}: each key must be 'SK' followed by 32 hex digits")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        from delivery_gateway.kernel.networks import parse_networks

        parse_networks(value)  # ValueError names the entry
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        from strawberry.http.websocket_origin import normalize_allowed_origins

        normalize_allowed_origins(value)  # raises ValueError on anything but '*' or scheme://host[:port]
        return value

    @field_validator("cache_url", "pubsub_url", "store_url", "response_cache_url")
    @classmethod
    def _known_backend(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        scheme = urlsplit(value).scheme
        allowed = _BACKEND_SCHEMES[str(info.field_name)]
        if info.field_name == "store_url" and scheme in ("redis", "rediss"):
            raise ValueError(REDIS_LEDGER_RETIRED)
        if scheme not in allowed:
            raise ValueError(f"unsupported scheme {scheme!r}; expected one of {sorted(allowed)}")
        return value

    @field_validator("twilio_base_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"{value!r} is not an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid(cls, value: str | None) -> str | None:
        from delivery_gateway.kernel.sids import is_sid

        if value is not None and not is_sid(value, "AC"):
            raise ValueError("must be 'AC' followed by 32 hex digits")
        return value

    @field_validator("twilio_api_key")
    @classmethod
    def _api_key_sid(cls, value: str | None) -> str | None:
        from delivery_gateway.kernel.sids import is_sid

        if value is not None and not is_sid(value, "SK"):
            raise ValueError("must be an API key SID: 'SK' followed by 32 hex digits")
        return value

    @model_validator(mode="after")
    def _api_key_pair(self) -> Settings:
        if bool(self.twilio_api_key) != bool(self.twilio_api_secret):
            missing = "TWILIO_API_SECRET" if self.twilio_api_key else "TWILIO_API_KEY"
            raise ValueError(f"{missing} is missing: TWILIO_API_KEY and TWILIO_API_SECRET go together")
        return self

    @model_validator(mode="after")
    def _reconcile_share(self) -> Settings:
        if self.reconcile_concurrency is not None and self.reconcile_concurrency > self.upstream_concurrency:
            raise ValueError(
                "DELIVERY_GATEWAY_RECONCILE_CONCURRENCY must not exceed DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY "
                f"({self.reconcile_concurrency} > {self.upstream_concurrency}): queries need their share"
            )
        return self

    @property
    def reconcile_parallelism(self) -> int:
        """Receipts lists the reconciler may have in flight: its bounded share of the upstream concurrency."""
        if self.reconcile_concurrency is not None:
            return self.reconcile_concurrency
        return max(1, self.upstream_concurrency // 4)

    @property
    def response_cache_store_url(self) -> str:
        """Where cached responses live: DELIVERY_GATEWAY_RESPONSE_CACHE_URL, else the resource cache's store."""
        return self.response_cache_url or self.cache_url

    @property
    def demo_page_enabled(self) -> bool:
        return self.demo_mode if self.demo_page is None else self.demo_page

    @property
    def auth_token(self) -> str | None:
        return self.twilio_auth_token.get_secret_value() if self.twilio_auth_token else None

    def signing_keys(self) -> dict[str, str]:
        """Every Twilio API key (SID → secret) whose Access Tokens the gateway accepts."""
        return {sid: secret.get_secret_value() for sid, secret in self.twilio_signing_keys.items()}

    def rest_credentials(self) -> tuple[str, str] | None:
        """(username, password) of Twilio's REST Basic auth: the API key pair when set, else the account SID and
        auth token; None when neither is complete."""
        if self.twilio_api_key and self.twilio_api_secret:
            return self.twilio_api_key, self.twilio_api_secret.get_secret_value()
        if self.twilio_account_sid and self.auth_token:
            return self.twilio_account_sid, self.auth_token
        return None

    def missing_credentials(self) -> list[str]:
        """Names of the variables `serve` needs and lacks, in the order a user should set them."""
        missing = []
        if not self.twilio_account_sid:
            missing.append("TWILIO_ACCOUNT_SID")
        if not self.auth_token:
            missing.append("TWILIO_AUTH_TOKEN")
        return missing
