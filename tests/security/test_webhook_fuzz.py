"""Random webhook bodies, content types and signatures against the real webhook route behind the body limit:
never a 500, never accepted without a valid signature, oversize bodies refused with 413.

In-process (httpx ASGI transport); the webhook route is the webhooks engineer's, wired by the live harness.
"""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery_gateway.kernel.sids import new_sid
from delivery_gateway.webhooks import WEBHOOK_PATH
from tests.app_support import running_app
from tests.live.harness import sign
from tests.security.conftest import make_settings

TOKEN = "webhook-test-auth-token"
URL = f"http://testserver{WEBHOOK_PATH}"
FIELDS = [
    "EventType",
    "AccountSid",
    "ConversationSid",
    "MessageSid",
    "DeliveryReceiptSid",
    "ParticipantSid",
    "ChannelMessageSid",
    "Status",
    "DateCreated",
    "DateUpdated",
    "Source",
    "Index",
    "Body",
    "Author",
]
EVENTS = ["onDeliveryUpdated", "onMessageAdded", "onMessageUpdated", "onParticipantUpdated", "onNope", ""]
values = st.one_of(
    st.sampled_from(EVENTS),
    st.sampled_from(["delivered", "read", "failed", "sent", "undelivered", "x"]),
    st.sampled_from(["CH", "IM", "DY", "MB"]).map(new_sid),
    st.text(max_size=30),
    st.sampled_from(["2026-01-01T00:00:00Z", "not a date", "-1", "99999999999999999999"]),
)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json",
    "",
    "text/plain",
]
forms = st.dictionaries(st.sampled_from(FIELDS) | st.text(min_size=1, max_size=10), values, max_size=12)


@settings(max_examples=50, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(
    form=forms,
    signed=st.booleans(),
    signature=st.text(max_size=40).filter(lambda s: s.isascii() and "\n" not in s and "\r" not in s),
    content_type=st.sampled_from(CONTENT_TYPES),
    padding=st.sampled_from([0, 0, 0, 70_000]),
)
async def test_random_webhooks(form: dict, signed: bool, signature: str, content_type: str, padding: int) -> None:
    settings_ = make_settings(TWILIO_AUTH_TOKEN=TOKEN, DELIVERY_GATEWAY_STORE_URL="memory://")
    if padding:
        form = {**form, "Body": "x" * padding}
    async with running_app(settings_) as app:  # the deployed middleware stack: guards, then the route
        forged = {"X-Twilio-Signature": signature} if signature else {}
        headers = sign(TOKEN, URL, form) if signed else forged
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            if content_type.startswith("application/x-www-form-urlencoded"):
                response = await client.post(WEBHOOK_PATH, data=form, headers=headers)
            else:
                body = "&".join(f"{k}={v}" for k, v in form.items()).encode("utf-8", "replace")
                response = await client.post(
                    WEBHOOK_PATH, content=body, headers={**headers, "Content-Type": content_type}
                )
    assert response.status_code < 500, response.text
    if padding:
        assert response.status_code == 413
    elif response.status_code == 200:
        assert signed and content_type.startswith("application/x-www-form-urlencoded")
