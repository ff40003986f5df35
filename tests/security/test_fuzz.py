"""Property tests: random credentials, documents, variables and SIDs never produce a 500 or a hang.

Hypothesis with modest example counts and a per-example deadline, against the gateway as deployed
(`create_app` over the fake upstream) in-process.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import ACCOUNT, API_KEY, CONV_ALICE, KEY, SECRET, SERVICE, gateway_app, make_world, mint

FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
_APP = gateway_app(make_world())
ALICE = {"Authorization": f"Bearer {mint('alice')}"}
INTERNAL = {"Authorization": f"Bearer {API_KEY}"}

scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
scalars |= st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


async def _post(content: str, headers: dict) -> httpx.Response:
    transport = httpx.ASGITransport(app=_APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        return await client.post("/graphql", content=content, headers=headers)


def post(body, headers: dict) -> tuple[int, object]:
    started = time.monotonic()
    headers = {**headers, "content-type": "application/json"}
    response = asyncio.run(_post(json.dumps(body), headers))
    assert time.monotonic() - started < 2, "request took too long"
    assert response.status_code != 500 and response.status_code < 500, response.text
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_random_authorization_headers(header: str) -> None:
    try:
        raw = header.encode("latin-1")
    except UnicodeEncodeError:
        raw = header.encode()
    if b"\n" in raw or b"\r" in raw or b"\0" in raw or raw != raw.strip() or not raw:
        return
    status, _ = post({"query": "{ __typename }"}, {"Authorization": raw})
    assert status == 401


chat_grants = st.fixed_dictionaries({}, optional={"service_sid": st.just(SERVICE) | json_values})


@FUZZ
@given(
    header=st.dictionaries(st.sampled_from(["alg", "cty", "typ", "kid", "x"]), json_values, max_size=4),
    claims=st.fixed_dictionaries(
        {},
        optional={
            "iss": st.sampled_from([KEY, "SK" + "0" * 32, ""]) | json_values,
            "sub": st.sampled_from([ACCOUNT, "AC" + "0" * 32]) | json_values,
            "exp": st.integers(0, 2**33) | json_values,
            "nbf": st.integers(0, 2**33) | json_values,
            "grants": st.fixed_dictionaries(
                {},
                optional={
                    "identity": st.text(max_size=10) | json_values,
                    "chat": chat_grants | json_values,
                },
            )
            | json_values,
        },
    ),
)
def test_random_signed_tokens(header: dict, claims: dict) -> None:
    header = {k: v for k, v in header.items() if k != "alg"}
    try:
        token = jwt.encode(claims, SECRET, algorithm="HS256", headers=header)
    except (TypeError, ValueError, jwt.InvalidTokenError):
        return
    status, body = post({"query": "{ __typename }"}, {"Authorization": f"Bearer {token}"})
    if status == 200:  # only a token that really passes every check
        assert body["data"] == {"__typename": "Query"}
        assert claims.get("iss") == KEY and claims.get("sub") == ACCOUNT
    else:
        assert status == 401


WORDS = [
    *"{ } ( ) : ... $n $t [ ] = # a: b: 1 -1 101 999999999999 Int String! F on n".split(),
    *"query subscription mutation fragment Query Conversation Message conversation sid message node id".split(),
    *"messages first last edges receipts status participants identity rollup window __schema __typename".split(),
    *"types name @skip".split(),
    "@include(if: true)",
    f'"{CONV_ALICE}"',
    '"x"',
]
documents = st.lists(st.sampled_from(WORDS), max_size=60).map(" ".join) | st.text(max_size=200)


@FUZZ
@given(query=documents, variables=st.none() | st.dictionaries(st.sampled_from(["n", "t", "x"]), json_values))
def test_random_documents_and_variables(query: str, variables: dict | None) -> None:
    status, body = post({"query": query, "variables": variables}, INTERNAL)
    assert status in (200, 400)
    if status == 200:
        for error in body.get("errors") or []:
            assert error.get("extensions", {}).get("code"), error
            assert "hunter2" not in error["message"]


@FUZZ
@given(body=json_values)
def test_random_request_bodies(body) -> None:
    status, _ = post(body, INTERNAL)
    assert status in (200, 400, 405)


@FUZZ
@given(sid=st.text(max_size=40) | st.from_regex(r"\A[A-Z]{2}[0-9a-f]{32}\Z"))
def test_random_sids_never_leak_other_conversations(sid: str) -> None:
    query = "query($s: String!) { conversation(sid: $s) { sid participants { identity } } }"
    status, body = post({"query": query, "variables": {"s": sid}}, ALICE)
    assert status == 200
    if sid == CONV_ALICE:
        assert {p["identity"] for p in body["data"]["conversation"]["participants"]} >= {"alice"}
    else:
        assert body["data"] == {"conversation": None}
        assert body["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "BAD_USER_INPUT")
        assert "mallory" not in json.dumps(body)
