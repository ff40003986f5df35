"""Backend URLs: the gateway's own options of a Redis URL are read in one place and never reach redis-py.

Pure; no Redis needed.
"""

from __future__ import annotations

import pytest

from delivery_gateway.kernel.urls import parse_redis_url, scheme_of


def test_gateway_options_are_split_off_and_the_rest_kept() -> None:
    parsed = parse_redis_url(
        "rediss://:secret@cache.internal:6380/2?prefix=dg:test&connect_timeout=0.5&health_check_interval=3"
    )
    assert parsed.url == "rediss://:secret@cache.internal:6380/2?health_check_interval=3"
    assert (parsed.prefix, parsed.connect_timeout) == ("dg:test", 0.5)
    assert parsed.key_prefix("dg:ledger:") == "dg:test:"
    assert parsed.client_options() == {"socket_connect_timeout": 0.5}


def test_defaults_when_the_options_are_absent() -> None:
    parsed = parse_redis_url("redis://127.0.0.1:6379/0")
    assert parsed.url == "redis://127.0.0.1:6379/0" and parsed.prefix is None
    assert parsed.key_prefix("dg:pubsub:") == "dg:pubsub:" and parsed.client_options() == {}
    assert scheme_of("sqlite:///x.db") == "sqlite"


@pytest.mark.parametrize("url", ["memory://", "http://127.0.0.1:6379", "redis://h?connect_timeout=soon"])
def test_not_a_redis_url_or_a_bad_option(url: str) -> None:
    with pytest.raises(ValueError):
        parse_redis_url(url)
