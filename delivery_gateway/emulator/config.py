"""Knobs of one emulator instance: credentials, seeding, simulator timing, Twilio's variable behaviours, faults.

Plain data; never starts anything. Tests mutate `state.config` at runtime, so readers look knobs up on use.
Where Twilio's behaviour is documented the default follows the document (cited here or in README.md); where it
is not, the default is the harshest plausible behaviour and the knob turns it down.
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
    # Retry-After on a 429, in seconds; None sends none. Twilio's 20429 page says to back off exponentially and
    # retry (https://www.twilio.com/docs/api/errors/20429) and documents no Retry-After for Conversations.
    retry_after: int | None = None
    # The next N requests answer 429 (then this counts down to 0), for a burst of exactly N refusals: how an account
    # over its per-second limit is answered until the second rolls over ("Actions Per Second" limits,
    # https://www.twilio.com/en-us/changelog/increasing-actions-per-second-for-conversations-). Drawn before the rates.
    rate_limit_next: int = 0
    server_error_rate: float = 0.0  # probability of a 5xx
    server_error_status: int = 503
    connection_reset_rate: float = 0.0  # probability the connection drops mid-response (truncated body)

    # Delivery simulator: seconds between a receipt's steps are step_delay * uniform(0.5, 1.5).
    step_delay: float = 1.0
    failure_rate: float = 0.1  # share of receipts ending failed or undelivered
    whatsapp_read_rate: float = 0.7  # share of delivered WhatsApp receipts that go on to read
    chat_read_rate: float = 0.8  # share of chat participants that read each message
    # Receipt statuses beyond the five (seed 002: "... sent or null"). Shares of new receipts that:
    queued_rate: float = 0.0  # start `queued`, then follow their path
    null_status_rate: float = 0.0  # start with status null and stay so
    unknown_status_rate: float = 0.0  # start with `unknown_status`, a status no document lists, then follow their path
    unknown_status: str = "accepted"  # a Twilio Messaging status Conversations does not document (yet)
    # error_code of a receipt without error in REST bodies. Twilio's receipt guide shows `"error_code": null`
    # (seed 001); the spec types it integer with `default: 0`. 0 reproduces the spec's reading.
    error_code_when_none: int | None = None

    # Outgoing webhooks. Like Twilio, actions made through this REST API fire their own webhooks
    # (onMessageAdded, onParticipantAdded, ...) only with `X-Twilio-Webhook-Enabled: true`;
    # onDeliveryUpdated always fires.
    rest_webhooks_without_header: bool = False  # True: REST actions fire webhooks even without the header
    # Share of webhooks never sent (counted in `webhooks.dropped`): Twilio gives an event up after its retries, and
    # post-event webhooks get none by default (the Chat Service resource's post_webhook_retry_count: "the default
    # is 0"; the Channel Webhook retry count likewise, https://twilio.com/docs/libraries/reference/twilio-php/7.3.0/
    # classes/Twilio_Rest_Chat_V2_Service_Channel_UpdateWebhookOptions/setConfigurationRetryCount.html), while
    # Twilio's delivery-failure guide (seed 003) makes the onDeliveryUpdated webhook the way failures are learnt:
    # one lost post is a receipt state the receiver never hears of. 1.0 loses them all (reconciliation's test).
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0  # probability a webhook is posted twice
    webhook_reorder_rate: float = 0.0  # probability the next queued webhook overtakes the current one
    webhook_concurrency: int = 1  # workers posting webhooks; 1 keeps them in order
    # Retries after a timeout or a 429/503/504 answer. Twilio's post_webhook_retry_count "default is 0, which
    # means the call won't be retried" (Chat Service resource, which Conversations services are).
    webhook_retries: int = 0
    webhook_retry_delay: float = 0.2  # seconds, doubled per attempt
    webhook_timeout: float = 5.0  # Twilio: "Conversations webhooks have a maximum timeout of 5 seconds"
    # A service-level configuration overrides the account-level one for that service's conversations (Per-Service
    # Webhook resource). Which settings make it "configured" is not documented: by default either URL does
    # (harshest: a service with only a pre-event URL hides the account-level post-event webhooks); False needs
    # a post-event URL.
    service_pre_webhook_overrides: bool = True
    # The key naming a media SID inside the `Media` webhook parameter: "Sid" as Conversations webhooks carry it,
    # "MediaSid" as the Event Streams schema of the same event spells it.
    webhook_media_sid_key: str = "Sid"
    # Parameters added to every webhook that no document lists (e.g. {"RetryCount": "0"}, seen on real posts):
    # a receiver must ignore what it does not know.
    webhook_extra_params: dict[str, str] = field(default_factory=dict)
