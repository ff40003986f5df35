"""What a subscription's stream is for when a live hub runs it (graphql/live/hub.py): the one place the root
fields' resolvers (live/resolvers.py) learn whether to follow the change stream themselves.

A context without a role is an ordinary subscription (SSE, legacy graphql-ws, a resume with `after`): it follows
its own stream. With a role:

- `Admission`: one subscriber joining a hub. The field authorizes it (as the subscription would) and ends
  without reading any change: its events come from the hub.
- `HubSource`: the hub's own stream, one for all its subscribers. It notes each change before the change is
  executed, so the hub knows which change a result is for, and says when it listens.
- `PinnedChange`: one subscriber's own execution of one change the hub already read (the hub's result had
  errors, which are never shared): the field authorizes the subscriber again and yields that change only.

Never changes what a field checks before reading: each role authorizes first, as an ordinary subscription does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from delivery_gateway.ledger import LedgerChange

# Root subscription fields whose resolvers honour the roles (they follow a change stream through
# live/resolvers.py `follow` or `follow_service`): only these are run by hubs.
SHAREABLE_FIELDS = frozenset({"deliveryUpdates", "readHorizonUpdates", "messageEvents", "serviceDeliveryUpdates"})


@dataclass(eq=False)
class Admission:
    """Set by the field once the subscriber is authorized for what it asked."""

    admitted: bool = False


@dataclass(eq=False)
class HubSource:
    """The hub's stream: `current` is the change being executed; `listening` is set once its pub/sub subscription
    receives what is published."""

    current: LedgerChange | None = None
    listening: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class PinnedChange:
    change: LedgerChange


LiveRole = Admission | HubSource | PinnedChange
