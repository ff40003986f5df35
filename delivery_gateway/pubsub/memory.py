"""In-process pub/sub (`memory://`): the default for a single gateway process.

Never crosses a process boundary: a replica's subscribers see only what that replica publishes.
"""

from __future__ import annotations

from delivery_gateway.pubsub.base import PubSub


class MemoryPubSub(PubSub):
    async def publish(self, channel: str, message: str) -> None:
        self._count_published()
        self._dispatch(channel, message)

    async def _listen(self, channel: str) -> None:
        return None

    async def _unlisten(self, channel: str) -> None:
        return None
