"""Fixtures of the GraphQL tests: settings, a fake upstream, and a `gql` runner (fresh context per call).

Never reaches the network; emulator fixtures live in test_on_emulator.py.
"""

from __future__ import annotations

import pytest

from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.kernel.settings import Settings
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import Runner
from tests.redis_support import redis_target  # noqa: F401 (fixture)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture
def fake() -> FakeConversations:
    return FakeConversations()


@pytest.fixture
def gql(settings: Settings, fake: FakeConversations) -> Runner:
    return Runner(GatewayServices(settings=settings, upstream=fake))
