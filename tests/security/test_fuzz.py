"""Property tests: random credentials, documents, variables (floats and defaults included), SIDs and slow or odd
headers never produce a 500, a hang, or more upstream calls than the ceiling.

Hypothesis with modest example counts and a per-example deadline, against the gateway as deployed
(`create_app` over the fake upstream) in-process, and on a real socket for the headers.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
import pytest
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


# Float and defaulted variables: graphql-core coerces 100.0 to the Int 100 and applies defaults, so the cost
# ceiling must judge them as the integers execution will use (and never let more upstream calls through).
_COSTED = make_world()
_COST_APP = gateway_app(_COSTED, DELIVERY_GATEWAY_MAX_QUERY_COST=300)
ROLLUPS = "conversations(first: $a) { edges { node { rollup(window: $w) { messages } } } }"


def _spelled(value: int, spelling: str) -> tuple[str, object]:
    """(the variable's default clause, the value sent) for one way of passing `value`."""
    if spelling == "default":
        return f" = {value}", None
    return "", float(value) if spelling == "float" else value


async def _post_to(app, body: dict, headers: dict) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        return await client.post("/graphql", json=body, headers=headers)


@FUZZ
@given(
    first=st.integers(0, 150),
    window=st.integers(1, 200),
    spellings=st.tuples(st.sampled_from(["int", "float", "default"]), st.sampled_from(["int", "float", "default"])),
)
def test_float_and_defaulted_variables_are_judged_as_integers(first: int, window: int, spellings: tuple) -> None:
    def run(first_spelling: str, window_spelling: str) -> tuple[int, object]:
        a_default, a = _spelled(first, first_spelling)
        w_default, w = _spelled(window, window_spelling)
        query = f"query($a: Int{a_default}, $w: Int!{w_default}) {{ {ROLLUPS} }}"
        variables = {name: value for name, value in (("a", a), ("w", w)) if value is not None}
        before = _COSTED.calls.total()
        response = asyncio.run(_post_to(_COST_APP, {"query": query, "variables": variables}, INTERNAL))
        assert _COSTED.calls.total() - before <= 300, "more upstream calls than the ceiling allows"
        body = response.json()
        codes = sorted({e["extensions"]["code"] for e in body.get("errors") or []})
        return response.status_code, codes

    assert run(*spellings) == run("int", "int")


# Slow and odd headers: whatever arrives, and however slowly, the server answers or closes within the deadline.
HEADER_PIECES = [
    b"GET /healthz HTTP/1.1\r\n",
    b"POST /graphql HTTP/1.1\r\n",
    b"Host: gateway\r\n",
    b"X-Slow: 1\r\n",
    b"Content-Length: 5\r\n",
    b"\r\n",
    b"G",
    b"\x00\xff",
    b": \r\n",
]


@pytest.fixture
async def slow_header_server():
    from tests.security.test_slow_clients import served

    async with served() as port:
        yield port


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(st.sampled_from(HEADER_PIECES) | st.binary(max_size=30), min_size=1, max_size=6),
    pauses=st.lists(st.floats(0, 0.5), min_size=6, max_size=6),
)
async def test_random_slow_headers_never_outlive_the_deadline(slow_header_server, pieces: list, pauses: list) -> None:
    from tests.security.test_slow_clients import BOUND

    reader, writer = await asyncio.open_connection("127.0.0.1", slow_header_server)
    opened = time.monotonic()
    answered = asyncio.ensure_future(reader.read(1))
    try:
        for piece, pause in zip(pieces, pauses, strict=False):
            if answered.done():
                break
            writer.write(piece)
            await asyncio.sleep(pause)
        await asyncio.wait_for(answered, BOUND + 2.5 - (time.monotonic() - opened))
    except (ConnectionError, TimeoutError) as exc:
        assert not isinstance(exc, TimeoutError), f"no answer and still open after {time.monotonic() - opened:.1f}s"
    finally:
        answered.cancel()
        writer.close()
    assert time.monotonic() - opened < BOUND + 2.5
