"""stripe_sandbox: a fast, deterministic local fake of the Stripe REST API for testing tap_stripe."""

from .sandbox import Sandbox
from .store import Store

__all__ = ["Sandbox", "Store"]
