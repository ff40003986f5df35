"""Knobs of one emulator instance: credentials, seeding, simulator timing and injected faults.

Plain data; never starts anything. Tests mutate `state.config` at runtime, so readers look knobs up on use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "emulator-auth-token"


@dataclass
class EmulatorConfig:
    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN
    # Extra Basic-auth pairs accepted besides account_sid/auth_token: API key SID (SK...) -> secret.
    api_keys: dict[str, str] = field(default_factory=dict)

    # Determinism: every random choice (SIDs, delivery paths, delays, faults) comes from Random(seed).
    seed: int | None = None
    seed_data: bool = False
    simulate: bool = True

    # Injected faults, per request, drawn in request order.
    latency: float = 0.0  # seconds added to every response
    latency_jitter: float = 0.0  # plus uniform(0, latency_jitter)
    rate_limit_rate: float = 0.0  # probability of 429 (code 20429)
    retry_after: int = 1  # seconds, sent as Retry-After with every 429
    server_error_rate: float = 0.0  # probability of a 5xx
    server_error_status: int = 503
    connection_reset_rate: float = 0.0  # probability the connection drops mid-response (truncated body)

    # Delivery simulator: seconds between a receipt's steps are step_delay * uniform(0.5, 1.5).
    step_delay: float = 1.0
    failure_rate: float = 0.1  # share of receipts ending failed or undelivered
    whatsapp_read_rate: float = 0.7  # share of delivered WhatsApp receipts that go on to read
    chat_read_rate: float = 0.8  # share of chat participants that read each message

    # Outgoing webhooks. Like Twilio, actions made through this REST API fire their own webhooks
    # (onMessageAdded, onParticipantAdded, ...) only with `X-Twilio-Webhook-Enabled: true`;
    # onDeliveryUpdated always fires.
    rest_webhooks_without_header: bool = False  # True: REST actions fire webhooks even without the header
    webhook_duplicate_rate: float = 0.0  # probability a webhook is posted twice
    webhook_reorder_rate: float = 0.0  # probability the next queued webhook overtakes the current one
    webhook_concurrency: int = 1  # workers posting webhooks; 1 keeps them in order
    webhook_retries: int = 3  # extra attempts after a connection error or 5xx
    webhook_retry_delay: float = 0.2  # seconds, doubled per attempt
    webhook_timeout: float = 5.0
