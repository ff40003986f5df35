"""Signed webhooks Twilio could not have sent, or sent for another account: a 400 naming the field, or a 200 that
is counted and ignored; never a 500, and nothing reaches the ledger.

Through `create_app` in-process (the guards, then the webhook route); signatures made with Twilio's own validator.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery_gateway.kernel.sids import CONVERSATION, MESSAGE, PARTICIPANT, RECEIPT, new_sid
from delivery_gateway.webhooks import WEBHOOK_PATH
from tests.app_support import running_app
from tests.live.harness import sign
from tests.security.conftest import ACCOUNT, OTHER_ACCOUNT, make_settings

TOKEN = "webhook-input-auth-token"
URL = f"http://testserver{WEBHOOK_PATH}"


def delivery(**overrides: str) -> dict[str, str]:
    form = {
        "EventType": "onDeliveryUpdated",
        "AccountSid": ACCOUNT,
        "ConversationSid": new_sid(CONVERSATION),
        "MessageSid": new_sid(MESSAGE),
        "DeliveryReceiptSid": new_sid(RECEIPT),
        "ParticipantSid": new_sid(PARTICIPANT),
        "ChannelMessageSid": "SM" + "1" * 32,
        "Status": "delivered",
        "DateCreated": "2026-01-01T00:00:00.000Z",
        "DateUpdated": "2026-01-01T00:00:01.000Z",
        "Source": "SMS",
    }
    form.update(overrides)
    return form


def horizon(**overrides: str) -> dict[str, str]:
    form = {
        "EventType": "onParticipantUpdated",
        "AccountSid": ACCOUNT,
        "ConversationSid": new_sid(CONVERSATION),
        "ParticipantSid": new_sid(PARTICIPANT),
        "LastReadMessageIndex": "3",
        "DateUpdated": "2026-01-01T00:00:01.000Z",
    }
    form.update(overrides)
    return form


async def post_signed(app, form: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post(WEBHOOK_PATH, data=form, headers=sign(TOKEN, URL, form))


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (delivery(DateUpdated="0001-01-01T00:00:00+01:00"), "DateUpdated"),  # before year 1 once in UTC
        (delivery(DateCreated="9999-12-31T23:59:59-01:00"), "DateCreated"),  # after year 9999 once in UTC
        (delivery(DateCreated="yesterday"), "DateCreated"),
        (delivery(ConversationSid="CH-nope"), "ConversationSid"),
        (delivery(DeliveryReceiptSid=""), "DeliveryReceiptSid"),
        (delivery(ErrorCode="-5"), "ErrorCode"),
        (delivery(ErrorCode="9" * 30), "ErrorCode"),  # larger than any store keeps
        (delivery(ErrorCode="x" * 5000), "ErrorCode"),
        (horizon(LastReadMessageIndex="1e3"), "LastReadMessageIndex"),
        (horizon(LastReadMessageIndex="-1"), "LastReadMessageIndex"),
        (delivery(AccountSid="AC-nope"), "AccountSid"),
    ],
)
async def test_every_parse_failure_is_a_400_naming_the_field(form: dict[str, str], field: str) -> None:
    async with running_app(make_settings(TWILIO_AUTH_TOKEN=TOKEN)) as app:
        response = await post_signed(app, form)
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(field), response.text
        assert await app.state.gateway.services.ledger.inbox_pending() == []


async def test_a_webhook_for_another_account_is_counted_and_ignored() -> None:
    async with running_app(make_settings(TWILIO_AUTH_TOKEN=TOKEN)) as app:
        services = app.state.gateway.services
        foreign = delivery(AccountSid=OTHER_ACCOUNT)
        response = await post_signed(app, foreign)
        assert response.status_code == 200 and response.json()["status"] == "ignored"
        labels = {"event_type": "onDeliveryUpdated", "outcome": "foreign_account"}
        assert services.metrics.sample("delivery_gateway_webhooks_received_total", labels) == 1
        await app.state.gateway.ingest.drain()
        assert await services.ledger.changes_after(foreign["ConversationSid"], 0) == []
        ours = delivery()
        assert (await post_signed(app, ours)).json()["status"] == "accepted"
        await app.state.gateway.ingest.drain()
        assert len(await services.ledger.changes_after(ours["ConversationSid"], 0)) == 1


FIELD_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "-1", "0", "1e3", "9" * 25, "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"]),
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123+05:30", "delivered", "read", "[]", "{}"]),
    st.sampled_from([CONVERSATION, MESSAGE, PARTICIPANT, RECEIPT, "AC", "IS"]).map(new_sid),
)


@settings(max_examples=80, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([delivery, horizon]),
    changes=st.dictionaries(
        st.sampled_from(
            [
                "AccountSid",
                "ConversationSid",
                "MessageSid",
                "DeliveryReceiptSid",
                "ParticipantSid",
                "Status",
                "ErrorCode",
                "DateCreated",
                "DateUpdated",
                "Index",
                "LastReadMessageIndex",
                "LastReadTimestamp",
                "ChatServiceSid",
            ]
        ),
        FIELD_VALUES,
        max_size=4,
    ),
)
async def test_random_signed_fields_never_a_500(base, changes: dict[str, str]) -> None:
    form = base(**changes)
    async with running_app(make_settings(TWILIO_AUTH_TOKEN=TOKEN)) as app:
        response = await post_signed(app, form)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        named = response.json()["error"].split(":")[0].split(" ")[0]
        assert named in form or named == "EventType", response.text


async def test_event_types_nobody_signed_cannot_grow_the_metrics() -> None:
    """The event type is counted before the signature is checked: a forged one is `other`, never a new series."""
    async with running_app(make_settings(TWILIO_AUTH_TOKEN=TOKEN)) as app:
        metrics = app.state.gateway.services.metrics
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            for i in range(50):
                response = await client.post(
                    WEBHOOK_PATH, data={"EventType": f"onForged{i}"}, headers={"X-Twilio-Signature": "forged"}
                )
                assert response.status_code == 403
        labels = {"event_type": "other", "outcome": "rejected"}
        assert metrics.sample("delivery_gateway_webhooks_received_total", labels) == 50
        families = [f for f in metrics.registry.collect() if f.name == "delivery_gateway_webhooks_received"]
        assert {s.labels["event_type"] for f in families for s in f.samples} == {"other"}
        # A signed event the gateway handles keeps its own name.
        assert (await post_signed(app, delivery())).status_code == 200
        labels = {"event_type": "onDeliveryUpdated", "outcome": "accepted"}
        assert metrics.sample("delivery_gateway_webhooks_received_total", labels) == 1
