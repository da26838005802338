"""Talking to Stripe: the HTTP client, rate limits, list pagination, the accounts a run reads."""
