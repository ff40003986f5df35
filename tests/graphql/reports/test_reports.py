"""deliveryReport and failedMessages through the real schema: counts and failures as the ledger recorded them,
errors explained, Relay paging, exact upstream call counts, argument validation and the API-key-only rule.

In-process: a fake upstream (tests/graphql/fake_upstream.py) and an in-memory ledger fed the receipts' statuses.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from delivery_gateway.delivery.error_codes import error_codes
from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger.events import DeliveryEvent
from tests.graphql.fake_upstream import DEFAULT_SERVICE, FakeConversations
from tests.graphql.gql_support import Runner, participant_caller

OTHER_SERVICE = "IS" + "0e" * 16
NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(days=2)
UNTIL = NOW + timedelta(hours=1)
WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}

REPORT = """
query($since: DateTime!, $until: DateTime!, $by: [DeliveryReportDimension!], $service: String) {
  deliveryReport(since: $since, until: $until, groupBy: $by, serviceSid: $service) {
    serviceSid total groupBy
    rows { count status errorCode error { code name retryable } channel hour day }
  }
}
"""
FAILED = """
query($since: DateTime!, $until: DateTime!, $first: Int, $after: String, $codes: [Int!], $retryable: Boolean,
      $service: String) {
  failedMessages(since: $since, until: $until, first: $first, after: $after, errorCodes: $codes,
                 retryable: $retryable, serviceSid: $service) {
    edges { cursor node {
      conversationSid messageSid receiptSid status errorCode failedAt
      error { code name description retryable }
      conversation { sid friendlyName }
      message { sid body }
      recipient { participantSid channel participant { sid address } }
    } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""


def event(
    receipt: ReceiptRecord, status: S, at: datetime, code: int | None, service: str, channel: str
) -> DeliveryEvent:
    """The webhook of one status; the channel message SID says the channel (SMxx for SMS, WAxx for WhatsApp)."""
    return DeliveryEvent(
        conversation_sid=receipt.conversation_sid,
        message_sid=receipt.message_sid,
        receipt_sid=receipt.sid,
        status=status,
        participant_sid=receipt.participant_sid,
        channel_message_sid=("WA" if channel == "whatsapp" else "SM") + receipt.sid[2:],
        error_code=code,
        date_created=(at - timedelta(minutes=1)).isoformat(),
        date_updated=at.isoformat(),
        service_sid=service,
    )


class Shop:
    """Two conversations of the default service (SMS and WhatsApp recipients) and one of another service, with
    every status their receipts took recorded in the ledger; `expected_*` are derived from the same plan."""

    LIVES = [  # (statuses in order, error code of the last one)
        ([S.SENT, S.DELIVERED, S.READ], None),
        ([S.SENT, S.UNDELIVERED], 30003),
        ([S.FAILED], 30008),
        ([S.SENT, S.DELIVERED], None),
        ([S.SENT, S.FAILED], 63016),
        ([S.SENT, S.UNDELIVERED], 30007),
    ]

    def __init__(self, fake: FakeConversations) -> None:
        self.fake = fake
        self.events: list[DeliveryEvent] = []
        self.failures: list[tuple[datetime, str, ReceiptRecord, S, int | None]] = []
        self.reached: Counter[tuple[S, int | None, str]] = Counter()
        n = 0
        for name, service in (("one", DEFAULT_SERVICE), ("two", DEFAULT_SERVICE), ("elsewhere", OTHER_SERVICE)):
            conv = fake.add_conversation(name)
            agent = fake.add_chat(conv, "agent")
            sms = fake.add_binding(conv, "sms", f"+1555000{n:04d}")
            wa = fake.add_binding(conv, "whatsapp", f"whatsapp:+1555100{n:04d}")
            for i in range(4):
                m = len(fake.conversations) * 4 + i  # every life, on both channels, across the messages
                life_sms, life_wa = self.LIVES[m % 6], self.LIVES[(m + 3) % 6]
                message = fake.add_message(
                    conv, agent, f"{name} {i}", {sms.sid: (S.SENT, None), wa.sid: (S.SENT, None)}
                )
                for receipt, (statuses, code), channel in zip(
                    conv.receipts[message.sid], (life_sms, life_wa), ("sms", "whatsapp"), strict=True
                ):
                    start = NOW - timedelta(hours=30) + timedelta(minutes=37 * n)
                    for step, status in enumerate(statuses):
                        at = start + timedelta(minutes=10 * step)
                        last = step == len(statuses) - 1
                        with_code = code if last and status in (S.FAILED, S.UNDELIVERED) else None
                        self.events.append(event(receipt, status, at, with_code, service, channel))
                        if service == DEFAULT_SERVICE:
                            self.reached[status, with_code, channel] += 1
                        if last and with_code is not None and service == DEFAULT_SERVICE:
                            self.failures.append((at, receipt.sid, receipt, status, code))
                    n += 1
        # Newest first, ties by receipt SID descending (the ledger's order).
        self.failures.sort(key=lambda f: (f[0], f[1]), reverse=True)


@pytest.fixture
async def shop(fake):
    services = GatewayServices(settings=Settings(_env_file=None), upstream=fake)
    await services.ledger.start()
    built = Shop(fake)
    await services.ledger.apply_many(built.events)
    built.gql = Runner(services)
    yield built
    await services.ledger.close()


async def test_report_by_status_error_and_channel_matches_what_was_recorded(shop):
    fake = shop.fake
    fake.calls.clear()
    result = await shop.gql(REPORT, {**WINDOW, "by": ["STATUS", "ERROR_CODE", "CHANNEL"]})
    assert result.errors is None, result.errors
    report = result.data["deliveryReport"]
    assert report["serviceSid"] == DEFAULT_SERVICE and report["groupBy"] == ["STATUS", "ERROR_CODE", "CHANNEL"]
    got = Counter({(S[r["status"]], r["errorCode"], r["channel"].lower()): r["count"] for r in report["rows"]})
    assert got == shop.reached
    assert report["total"] == sum(shop.reached.values())
    explained = {r["errorCode"]: r["error"] for r in report["rows"] if r["errorCode"]}
    assert len(explained) >= 3
    for code, error in explained.items():
        entry = error_codes()[code]
        assert error == {"code": code, "name": entry.name, "retryable": entry.retryable}
    assert all(r["error"] is None for r in report["rows"] if r["errorCode"] is None)
    assert all(r["hour"] is None and r["day"] is None for r in report["rows"])
    assert dict(fake.calls) == {"fetch_configuration": 1}  # the default service's SID; nothing else upstream

    fake.calls.clear()
    again = await shop.gql(REPORT, {**WINDOW, "service": DEFAULT_SERVICE})
    assert again.data["deliveryReport"]["rows"] == [
        {
            "count": report["total"],
            "status": None,
            "errorCode": None,
            "error": None,
            "channel": None,
            "hour": None,
            "day": None,
        }
    ]
    assert dict(fake.calls) == {}  # a named service costs no upstream call


async def test_report_by_hour_and_day_adds_up_and_other_services_are_apart(shop):
    result = await shop.gql(REPORT, {**WINDOW, "by": ["DAY", "HOUR"]})
    rows = result.data["deliveryReport"]["rows"]
    assert sum(r["count"] for r in rows) == sum(shop.reached.values())
    for row in rows:
        hour, day = datetime.fromisoformat(row["hour"]), datetime.fromisoformat(row["day"])
        assert hour.minute == hour.second == 0 and day.hour == 0 and hour.date() == day.date()
    assert [(r["day"], r["hour"]) for r in rows] == sorted((r["day"], r["hour"]) for r in rows)

    other = await shop.gql(REPORT, {**WINDOW, "service": OTHER_SERVICE})
    total_other = sum(1 for e in shop.events if e.service_sid == OTHER_SERVICE)
    assert other.data["deliveryReport"]["total"] == total_other > 0
    empty = await shop.gql(
        REPORT,
        {"since": (NOW + timedelta(hours=2)).isoformat(), "until": UNTIL.replace(year=UNTIL.year + 1).isoformat()},
    )
    assert empty.data["deliveryReport"]["rows"] == [
        {"count": 0, "status": None, "errorCode": None, "error": None, "channel": None, "hour": None, "day": None}
    ]


async def test_failed_messages_newest_first_with_conversation_recipient_and_error(shop):
    fake = shop.fake
    fake.calls.clear()
    result = await shop.gql(FAILED, {**WINDOW, "first": 100})
    assert result.errors is None, result.errors
    edges = result.data["failedMessages"]["edges"]
    assert [e["node"]["receiptSid"] for e in edges] == [f[1] for f in shop.failures]
    conversations = {c.record.sid: c for c in fake.conversations.values()}
    for edge, (at, _, receipt, status, code) in zip(edges, shop.failures, strict=True):
        node = edge["node"]
        assert node["status"] == status.name and node["errorCode"] == code
        assert datetime.fromisoformat(node["failedAt"]) == at
        assert node["error"]["code"] == code and node["error"]["description"]
        conv = conversations[receipt.conversation_sid]
        assert node["conversation"] == {"sid": conv.record.sid, "friendlyName": conv.record.friendly_name}
        message = next(m for m in conv.messages if m.sid == receipt.message_sid)
        assert node["message"] == {"sid": message.sid, "body": message.body}
        participant = next(p for p in conv.participants if p.sid == receipt.participant_sid)
        recipient = node["recipient"]
        assert recipient["participantSid"] == participant.sid
        assert recipient["participant"] == {"sid": participant.sid, "address": participant.messaging_binding["address"]}
        assert recipient["channel"] == participant.messaging_binding["type"].upper()
    assert result.data["failedMessages"]["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "endCursor": edges[-1]["cursor"],
    }
    # Batched: each conversation once, each message once, each conversation's participants once.
    failed_conversations = {f[2].conversation_sid for f in shop.failures}
    assert dict(fake.calls) == {
        "fetch_configuration": 1,
        "fetch_conversation": len(failed_conversations),
        "fetch_message": len({f[2].message_sid for f in shop.failures}),
        "list_participants": len(failed_conversations),
    }


async def test_failed_messages_page_through_and_filter(shop):
    expected = [f[1] for f in shop.failures]
    seen, after = [], None
    while True:
        page = (await shop.gql(FAILED, {**WINDOW, "first": 3, "after": after})).data["failedMessages"]
        seen += [e["node"]["receiptSid"] for e in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected and len(expected) > 6

    only = await shop.gql(FAILED, {**WINDOW, "codes": [30003, 30007]})
    codes = [e["node"]["errorCode"] for e in only.data["failedMessages"]["edges"]]
    assert sorted(codes) == sorted(f[4] for f in shop.failures if f[4] in (30003, 30007)) and codes
    retryable = await shop.gql(FAILED, {**WINDOW, "retryable": True})
    flags = {e["node"]["error"]["retryable"] for e in retryable.data["failedMessages"]["edges"]}
    not_retryable = await shop.gql(FAILED, {**WINDOW, "retryable": False})
    others = {e["node"]["error"]["retryable"] for e in not_retryable.data["failedMessages"]["edges"]}
    assert flags == {True} and others == {False}
    total = len(retryable.data["failedMessages"]["edges"]) + len(not_retryable.data["failedMessages"]["edges"])
    assert total == len(expected)


async def test_a_conversation_twilio_no_longer_has_reads_null(shop):
    gone = shop.failures[0][2].conversation_sid
    del shop.fake.conversations[gone]
    result = await shop.gql(FAILED, {**WINDOW, "first": 100})
    assert result.errors is None
    nodes = [e["node"] for e in result.data["failedMessages"]["edges"] if e["node"]["conversationSid"] == gone]
    assert nodes and all(n["conversation"] is None and n["message"] is None for n in nodes)
    assert all(n["recipient"]["participant"] is None and n["error"] for n in nodes)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"since": "2026-01-01T00:00:00", "until": UNTIL.isoformat()}, "since: a time zone is required"),
        ({"since": SINCE.isoformat(), "until": SINCE.isoformat()}, "until: must be later than since"),
        (
            {"since": (NOW - timedelta(days=31)).isoformat(), "until": UNTIL.isoformat()},
            "since: the ledger keeps 30 days",
        ),
        ({**WINDOW, "service": "IS123"}, "serviceSid: 'IS123' is not a valid SID"),
    ],
)
async def test_bad_windows_and_services_are_bad_user_input(shop, variables, message):
    for query, field in ((REPORT, "deliveryReport"), (FAILED, "failedMessages")):
        result = await shop.gql(query, variables)
        assert result.data[field] is None
        (error,) = result.errors
        assert error.extensions["code"] == "BAD_USER_INPUT" and error.message.startswith(message), error.message


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 101}, "first must be between 0 and 100"),
        ({"first": -1}, "first must be between 0 and 100"),
        ({"after": "not-a-cursor"}, "after: not a failedMessages cursor"),
        ({"codes": []}, "errorCodes: give at least one code"),
    ],
)
async def test_bad_pages_and_filters_are_bad_user_input(shop, variables, message):
    result = await shop.gql(FAILED, {**WINDOW, **variables})
    (error,) = result.errors
    assert error.extensions["code"] == "BAD_USER_INPUT" and error.message.startswith(message), error.message


async def test_a_window_starting_just_before_the_horizon_is_accepted(shop):
    """A client computing "the last 30 days" a moment before the gateway does is still within retention."""
    since = (datetime.now(UTC) - timedelta(days=30, seconds=30)).isoformat()
    result = await shop.gql(REPORT, {"since": since, "until": UNTIL.isoformat()})
    assert result.errors is None and result.data["deliveryReport"]["total"] == sum(shop.reached.values())


async def test_participant_callers_are_forbidden_before_anything_is_read(shop):
    shop.fake.calls.clear()
    for query, field in ((REPORT, "deliveryReport"), (FAILED, "failedMessages")):
        for service in (None, DEFAULT_SERVICE):
            result = await shop.gql(query, {**WINDOW, "service": service}, caller=participant_caller("agent"))
            assert result.data[field] is None and result.errors[0].extensions["code"] == "FORBIDDEN"
    assert dict(shop.fake.calls) == {}


async def test_an_account_without_a_default_service_must_name_one(shop):
    async def no_default():
        from delivery_gateway.kernel.records import ConfigurationRecord

        return ConfigurationRecord(default_chat_service_sid=None)

    shop.fake.fetch_configuration = no_default
    result = await shop.gql(REPORT, WINDOW)
    assert result.errors[0].extensions["code"] == "FAILED_PRECONDITION"
    assert "pass one" in result.errors[0].message
    named = await shop.gql(REPORT, {**WINDOW, "service": DEFAULT_SERVICE})
    assert named.errors is None


async def test_ledger_queries_have_their_own_ceiling():
    settings = Settings(_env_file=None, DELIVERY_GATEWAY_MAX_LEDGER_QUERIES=3)
    gql = Runner(GatewayServices(settings=settings, upstream=FakeConversations()))
    field = f'deliveryReport(since: "{SINCE.isoformat()}", until: "{UNTIL.isoformat()}") {{ total }}'
    await gql.services.ledger.start()
    try:
        fits = await gql("{ " + " ".join(f"r{n}: {field}" for n in range(3)) + " }")
        assert fits.errors is None
        over = await gql("{ " + " ".join(f"r{n}: {field}" for n in range(4)) + " }")
        (error,) = over.errors
        assert error.extensions == {"code": "QUERY_TOO_COMPLEX", "ledgerQueries": 4}
        assert over.data is None
    finally:
        await gql.services.ledger.close()
