"""Gateway configuration, read once from the environment and `.env`.

Never reads the environment anywhere else: every module gets its settings passed in, so tests build their own.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_BACKEND_SCHEMES = {
    "cache_url": {"memory", "redis", "rediss"},
    "pubsub_url": {"memory", "redis", "rediss"},
    "store_url": {"memory", "sqlite", "redis", "rediss"},
}


class Settings(BaseSettings):
    """All knobs of one gateway process.

    Backends are picked by URL scheme (memory://, redis://, sqlite:///path), the way encode/broadcaster does.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    twilio_api_key: str | None = Field(default=None, alias="TWILIO_API_KEY")
    twilio_api_secret: SecretStr | None = Field(default=None, alias="TWILIO_API_SECRET")

    twilio_base_url: str = Field(
        default="https://conversations.twilio.com", alias="DELIVERY_GATEWAY_TWILIO_BASE_URL"
    )
    cache_url: str = Field(default="memory://", alias="DELIVERY_GATEWAY_CACHE_URL")
    pubsub_url: str = Field(default="memory://", alias="DELIVERY_GATEWAY_PUBSUB_URL")
    store_url: str = Field(default="sqlite:///delivery-gateway.sqlite3", alias="DELIVERY_GATEWAY_STORE_URL")
    public_url: str | None = Field(default=None, alias="DELIVERY_GATEWAY_PUBLIC_URL")
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="DELIVERY_GATEWAY_API_KEYS")

    # Upstream behaviour.
    upstream_concurrency: int = Field(default=32, ge=1, le=1024, alias="DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY")
    upstream_connect_timeout: float = Field(default=3.0, gt=0, alias="DELIVERY_GATEWAY_UPSTREAM_CONNECT_TIMEOUT")
    upstream_read_timeout: float = Field(default=10.0, gt=0, alias="DELIVERY_GATEWAY_UPSTREAM_READ_TIMEOUT")
    upstream_max_retries: int = Field(default=3, ge=0, le=10, alias="DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES")

    # Cache TTLs, seconds, per resource kind.
    ttl_conversation: float = Field(default=60.0, ge=0, alias="DELIVERY_GATEWAY_TTL_CONVERSATION")
    ttl_participants: float = Field(default=60.0, ge=0, alias="DELIVERY_GATEWAY_TTL_PARTICIPANTS")
    ttl_messages: float = Field(default=30.0, ge=0, alias="DELIVERY_GATEWAY_TTL_MESSAGES")
    ttl_receipts: float = Field(default=30.0, ge=0, alias="DELIVERY_GATEWAY_TTL_RECEIPTS")
    ttl_receipts_terminal: float = Field(default=3600.0, ge=0, alias="DELIVERY_GATEWAY_TTL_RECEIPTS_TERMINAL")

    # GraphQL surface.
    introspection: bool = Field(default=True, alias="DELIVERY_GATEWAY_INTROSPECTION")
    graphiql: bool = Field(default=True, alias="DELIVERY_GATEWAY_GRAPHIQL")
    legacy_graphql_ws: bool = Field(default=False, alias="DELIVERY_GATEWAY_LEGACY_GRAPHQL_WS")
    subscriber_queue_size: int = Field(default=256, ge=1, alias="DELIVERY_GATEWAY_SUBSCRIBER_QUEUE_SIZE")

    # Set by `delivery-gateway demo` only: lets callers in without credentials.
    demo_mode: bool = Field(default=False, alias="DELIVERY_GATEWAY_DEMO_MODE")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("cache_url", "pubsub_url", "store_url")
    @classmethod
    def _known_backend(cls, value: str, info) -> str:
        scheme = urlsplit(value).scheme
        allowed = _BACKEND_SCHEMES[info.field_name]
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
        from delivery_gateway.sids import is_sid

        if value is not None and not is_sid(value, "AC"):
            raise ValueError("must be 'AC' followed by 32 hex digits")
        return value

    @property
    def auth_token(self) -> str | None:
        return self.twilio_auth_token.get_secret_value() if self.twilio_auth_token else None

    def missing_credentials(self) -> list[str]:
        """Names of the variables `serve` needs and lacks, in the order a user should set them."""
        missing = []
        if not self.twilio_account_sid:
            missing.append("TWILIO_ACCOUNT_SID")
        if not self.auth_token:
            missing.append("TWILIO_AUTH_TOKEN")
        return missing
