"""Leaf values as the built schema serves them (graphql/leaf_output.py): enum values by lookup and timestamps' text
kept, each exactly what Strawberry would serve; an unknown enum value still fails with graphql-core's error.

Never starts a server: the coercions are those of `build_schema`'s types.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from dateutil import tz
from graphql import GraphQLError

from delivery_gateway.delivery.ticks import Ticks
from delivery_gateway.graphql.delivery.types import DeliveryAmount
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.kernel.settings import Settings


@pytest.fixture(scope="module")
def type_map():
    return build_schema(Settings(_env_file=None))._schema.type_map


def test_enum_values_by_member_or_raw_value_and_unknown_ones_refused(type_map):
    assert type_map["Ticks"].coerce_output_value(Ticks.READ) == "READ"
    assert type_map["Ticks"].coerce_output_value("read") == "READ"  # a raw value, as graphql-core accepts
    assert type_map["DeliveryAmount"].coerce_output_value(DeliveryAmount.SOME) == "SOME"
    with pytest.raises(GraphQLError, match="cannot represent value"):
        type_map["DeliveryAmount"].coerce_output_value("most")


def test_timestamps_keep_their_own_text_whatever_the_zone(type_map):
    coerce = type_map["DateTime"].coerce_output_value
    utc = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    paris = datetime(2026, 12, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))  # the same instant
    parsed = datetime(2026, 12, 1, 12, 0, 0, 500, tzinfo=tz.tzutc())  # dateutil's zone is not hashable
    naive = datetime(2026, 12, 1, 12, 0)
    for _ in range(2):  # the second round is served from the kept text
        assert coerce(utc) == "2026-12-01T12:00:00+00:00"
        assert coerce(paris) == "2026-12-01T13:00:00+01:00"
        assert coerce(parsed) == parsed.isoformat()
        assert coerce(naive) == "2026-12-01T12:00:00"
