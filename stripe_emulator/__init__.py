"""A stateful, in-memory emulator of the Stripe API v1 for development and tests."""

from stripe_emulator.app import create_app
from stripe_emulator.testing import RunningEmulator, start_emulator

__all__ = ["RunningEmulator", "create_app", "start_emulator"]
