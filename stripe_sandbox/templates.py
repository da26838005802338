"""Hand-tuned variant templates for the important Stripe objects, in the shapes of the API
version the sandbox serves (`resources.API_VERSION`).

Each function returns a partial object (wire format, PH markers allowed); the store merges it
over the schema-generated object, keeping only fields the stream's schema has and whose
values conform to it. `LINK` forces a link field to point to an existing object (also inside a
sub-object, such as an invoice's `parent.subscription_details.subscription`), `None` forces
null.
"""

from __future__ import annotations

import random

from .fake import BRANDS, PH, PRODUCTS, address, amount, metadata, person, phone, settles, tok, ts

LINK = PH("link")


def _card(rng):
    brand, last4 = rng.choice(BRANDS)
    return brand, last4, {"brand": brand, "last4": last4, "exp_month": rng.randint(1, 12),
                          "exp_year": rng.randint(2026, 2032), "country": rng.choice(["US", "US", "GB", "DE", "FR"]),
                          "funding": rng.choice(["credit", "debit", "prepaid"]), "fingerprint": tok(rng, 16),
                          "network": brand, "checks": {"address_line1_check": None, "address_postal_code_check": "pass",
                                                       "cvc_check": "pass"},
                          "installments": None, "mandate": None, "network_token": {"used": False},
                          "three_d_secure": None, "wallet": None}


def charge(rng: random.Random):
    amt = amount(rng)
    status = rng.choices(["succeeded", "failed", "pending"], [90, 8, 2])[0]
    refunded = 0
    if status == "succeeded" and rng.random() < 0.12:
        refunded = amt if rng.random() < 0.6 else amt // 2
    _brand, _last4, card = _card(rng)
    _first, _last, full, email = person(rng)
    return {
        "amount": amt, "amount_captured": amt if status == "succeeded" else 0, "amount_refunded": refunded,
        "captured": status == "succeeded", "paid": status == "succeeded", "refunded": refunded == amt,
        "status": status, "currency": rng.choice(["usd"] * 5 + ["eur", "gbp"]), "livemode": False,
        "customer": LINK if rng.random() < 0.85 else None,
        "payment_intent": LINK, "balance_transaction": LINK if status == "succeeded" else None,
        "description": rng.choice([None, f"Order #{rng.randint(1000, 99999)}", "Subscription update", "Payment for invoice"]),
        "failure_code": "card_declined" if status == "failed" else None,
        "failure_message": "Your card was declined." if status == "failed" else None,
        "billing_details": {"address": address(rng), "email": email, "name": full, "phone": rng.choice([None, phone(rng)])},
        "payment_method": "pm_" + tok(rng, 24),
        "payment_method_details": {"card": card, "type": "card"},
        "outcome": {"network_status": "approved_by_network" if status != "failed" else "declined_by_network",
                    "reason": None if status != "failed" else "generic_decline", "risk_level": "normal",
                    "risk_score": rng.randint(0, 80), "seller_message": "Payment complete." if status != "failed" else "The bank did not return any further details with this decline.",
                    "type": "authorized" if status != "failed" else "issuer_declined"},
        "receipt_email": email if rng.random() < 0.5 else None, "metadata": metadata(rng),
        "disputed": rng.random() < 0.01, "fraud_details": {}, "shipping": None,
        # a charge of a PaymentIntent has no legacy `source`, and level 3 data is rare
        "source": None, "level3": None,
        "calculated_statement_descriptor": "ACME INC", "statement_descriptor": None,
    }


def customer(rng):
    _first, _last, full, email = person(rng)
    return {"name": full, "email": email, "phone": rng.choice([None, phone(rng)]), "address": address(rng) if rng.random() < 0.7 else None,
            "balance": rng.choice([0, 0, 0, -500, 1200]), "currency": rng.choice(["usd", "usd", "eur", "gbp", None]),
            "delinquent": rng.random() < 0.05, "description": rng.choice([None, "Enterprise customer", "Trial signup", "Imported"]),
            "invoice_prefix": tok(rng, 8).upper(), "livemode": False, "metadata": metadata(rng),
            "next_invoice_sequence": rng.randint(1, 40), "preferred_locales": rng.choice([[], ["en"], ["fr"], ["de"]]),
            "tax_exempt": rng.choices(["none", "exempt", "reverse"], [90, 5, 5])[0], "test_clock": None, "discount": None}


def invoice(rng):
    sub = rng.random() < 0.75
    total = amount(rng)
    status = rng.choices(["paid", "open", "draft", "void", "uncollectible"], [70, 12, 8, 6, 4])[0]
    paid = total if status == "paid" else 0
    _first, _last, full, email = person(rng)
    # Since 2025-03-31 an invoice names its subscription under `parent` (no `subscription`,
    # `charge`, `paid` fields any more).
    parent = {"type": "subscription_details", "quote_details": None,
              "subscription_details": {"subscription": LINK, "metadata": {}, "subscription_proration_date": None}}
    return {"parent": parent if sub else None, "customer": LINK, "currency": "usd", "status": status,
            "billing_reason": "subscription_cycle" if sub else "manual", "collection_method": "charge_automatically",
            "amount_due": total, "amount_paid": paid, "amount_remaining": total - paid, "subtotal": total, "total": total,
            "attempted": status != "draft", "attempt_count": 0 if status == "draft" else 1,
            "customer_email": email, "customer_name": full, "livemode": False, "metadata": metadata(rng),
            "period_start": ts(-30 * 86400), "period_end": ts(0), "due_date": None,
            "number": f"{tok(rng, 8).upper()}-{rng.randint(1, 999):04d}" if status != "draft" else None,
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_test/" + tok(rng, 40) if status != "draft" else None}


def _price_obj(rng):
    unit = rng.choice([500, 1000, 2000, 4900, 9900])
    return {"id": "price_" + tok(rng, 24), "object": "price", "active": True, "billing_scheme": "per_unit",
            "currency": "usd", "livemode": False, "metadata": {}, "nickname": None,
            "product": "prod_" + tok(rng, 14), "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
            "tax_behavior": "unspecified", "type": "recurring", "unit_amount": unit, "unit_amount_decimal": str(unit)}


def line_item(rng):
    amt = amount(rng)
    # Since 2025-03-31 a line's price is under `pricing.price_details`, its origin under `parent`.
    return {"object": "line_item", "amount": amt, "subtotal": amt, "currency": "usd",
            "description": f"1 × {rng.choice(PRODUCTS)} (at ${amt / 100:.2f} / month)", "discountable": True,
            "discount_amounts": [], "discounts": [], "livemode": False, "metadata": {}, "quantity": rng.randint(1, 3),
            "pricing": {"type": "price_details", "unit_amount_decimal": str(amt),
                        "price_details": {"price": "price_" + tok(rng, 24), "product": "prod_" + tok(rng, 14)}},
            "period": {"start": ts(-30 * 86400), "end": ts(0)}}


def subscription(rng):
    status = rng.choices(["active", "canceled", "past_due", "trialing", "incomplete", "unpaid"], [60, 22, 6, 8, 2, 2])[0]
    canceled = status == "canceled"
    return {"customer": LINK, "status": status, "currency": "usd", "collection_method": "charge_automatically",
            "cancel_at_period_end": False, "canceled_at": ts(86400 * 40) if canceled else None,
            "ended_at": ts(86400 * 40) if canceled else None, "cancel_at": None, "billing_cycle_anchor": ts(0),
            "start_date": ts(0), "trial_start": ts(0) if status == "trialing" else None,
            "trial_end": ts(14 * 86400) if status == "trialing" else None, "livemode": False, "metadata": metadata(rng),
            "days_until_due": None, "description": None, "latest_invoice": None}


def subscription_item(rng):
    # Since 2025-03-31 the current period is the item's, not the subscription's.
    return {"object": "subscription_item", "quantity": rng.randint(1, 10), "metadata": metadata(rng),
            "billing_thresholds": None, "tax_rates": [],
            "current_period_start": ts(0), "current_period_end": ts(30 * 86400)}


def payment_intent(rng):
    amt = amount(rng)
    status = rng.choices(["succeeded", "requires_payment_method", "canceled", "processing", "requires_action"], [80, 8, 6, 3, 3])[0]
    return {"amount": amt, "amount_received": amt if status == "succeeded" else 0, "amount_capturable": 0,
            "currency": rng.choice(["usd"] * 5 + ["eur", "gbp"]), "status": status, "customer": LINK if rng.random() < 0.8 else None,
            "capture_method": "automatic", "confirmation_method": "automatic", "livemode": False,
            "payment_method_types": ["card"], "metadata": metadata(rng),
            "canceled_at": ts(3600) if status == "canceled" else None,
            "cancellation_reason": "abandoned" if status == "canceled" else None,
            "description": rng.choice([None, f"Order #{rng.randint(1000, 99999)}"]),
            "client_secret": "pi_secret_" + tok(rng, 24)}


def refund(rng):
    return {"amount": amount(rng) // 2, "charge": LINK, "currency": "usd", "status": rng.choices(["succeeded", "pending", "failed"], [92, 5, 3])[0],
            "reason": rng.choice([None, "requested_by_customer", "duplicate", "fraudulent"]), "metadata": metadata(rng),
            "balance_transaction": LINK, "receipt_number": None}


def balance_transaction(rng):
    kind = rng.choices(["charge", "refund", "payout", "stripe_fee", "adjustment"], [70, 8, 10, 8, 4])[0]
    amt = amount(rng) * (-1 if kind in ("refund", "payout", "stripe_fee") else 1)
    fee = max(0, int(abs(amt) * 0.029) + 30) if kind == "charge" else 0
    return {"amount": amt, "fee": fee, "net": amt - fee, "currency": "usd", "type": kind, "reporting_category": kind if kind != "stripe_fee" else "fee",
            "status": settles(2 * 86400), "available_on": ts(2 * 86400),
            "description": rng.choice([None, "Payment for invoice", "STRIPE PAYOUT", "Refund for order"]),
            "exchange_rate": None,
            "fee_details": [{"amount": fee, "application": None, "currency": "usd", "description": "Stripe processing fees", "type": "stripe_fee"}] if fee else []}


def product(rng):
    name = rng.choice(PRODUCTS)
    return {"name": name, "active": rng.random() < 0.9, "description": f"{name} — {rng.choice(['best seller', 'new', 'classic'])}",
            "livemode": False, "metadata": metadata(rng), "images": [], "shippable": None, "unit_label": None,
            "statement_descriptor": None, "tax_code": None, "url": None, "updated": ts(rng.randint(0, 86400 * 30))}


def price(rng):
    recurring = rng.random() < 0.7
    unit = rng.choice([500, 999, 1000, 2000, 4900, 9900, 19900])
    return {"active": rng.random() < 0.9, "billing_scheme": "per_unit", "currency": rng.choice(["usd", "usd", "eur"]),
            "livemode": False, "product": LINK, "type": "recurring" if recurring else "one_time",
            "recurring": {"interval": rng.choice(["month", "year"]), "interval_count": 1, "usage_type": "licensed",
                          "aggregate_usage": None, "trial_period_days": None} if recurring else None,
            "unit_amount": unit, "unit_amount_decimal": str(unit), "tax_behavior": "unspecified", "lookup_key": None,
            "nickname": None, "metadata": metadata(rng), "tiers_mode": None, "transform_quantity": None, "custom_unit_amount": None}


def payout(rng):
    status = rng.choices(["paid", "in_transit", "pending", "failed", "canceled"], [80, 8, 6, 3, 3])[0]
    return {"amount": amount(rng) * 10, "currency": "usd", "status": status, "arrival_date": ts(2 * 86400), "automatic": True,
            "method": "standard", "type": "bank_account", "source_type": "card", "description": "STRIPE PAYOUT",
            "balance_transaction": LINK, "destination": "ba_" + tok(rng, 24), "livemode": False, "metadata": {},
            "failure_code": "account_closed" if status == "failed" else None,
            "failure_message": "The bank account has been closed" if status == "failed" else None,
            "reconciliation_status": "completed" if status == "paid" else "not_applicable", "statement_descriptor": None}


TEMPLATES = {
    "charge": charge, "customer": customer, "invoice": invoice, "line_item": line_item, "subscription": subscription,
    "subscription_item": subscription_item, "payment_intent": payment_intent, "refund": refund,
    "balance_transaction": balance_transaction, "product": product, "price": price, "payout": payout,
}
