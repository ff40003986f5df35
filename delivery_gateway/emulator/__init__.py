"""A built-in emulator of the part of Twilio Conversations v1 the gateway uses: REST, receipts, webhooks.

For development, demos, tests and benchmarks only; it must never be mistaken for, or proxy to, real Twilio.
"""

from delivery_gateway.emulator.app import EmulatorState, create_emulator_app
from delivery_gateway.emulator.config import EmulatorConfig
from delivery_gateway.emulator.server import RunningEmulator, serve_emulator

__all__ = ["EmulatorConfig", "EmulatorState", "RunningEmulator", "create_emulator_app", "serve_emulator"]
