"""delivery-gateway: a GraphQL gateway over Twilio Conversations delivery state.

The stable Python entry points are `create_app` (the ASGI app) and `Settings` (its configuration); both are loaded
on first use, so importing a subpackage (the emulator, say) never imports the whole gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from delivery_gateway.app import create_app
    from delivery_gateway.kernel.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from delivery_gateway.app import create_app

        return create_app
    if name == "Settings":
        from delivery_gateway.kernel.settings import Settings

        return Settings
    raise AttributeError(f"module 'delivery_gateway' has no attribute {name!r}")
