"""tap-stripe: a Singer tap for Stripe."""

__version__ = "0.1.0"
