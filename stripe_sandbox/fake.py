"""Realistic values chosen by field name, and a JSON-Schema driven object generator.

Values may contain `PH` markers (per-object placeholders: ids, timestamps relative to the
object's `created`, links, embedded child lists) that the store fills in per object.
"""

from __future__ import annotations

import random
import re
from typing import Any

from .ids import ALPHABET
from .resources import API_VERSION, ID_PREFIXES

FIRST = ["Jenny", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Ava", "Lucas", "Sofia", "Hiro", "Amara",
         "Chen", "Priya", "Jonas", "Fatima", "Diego", "Ingrid", "Kwame", "Yuki", "Elena", "Omar", "Zoe"]
LAST = ["Rosen", "Smith", "Garcia", "Müller", "Nguyen", "Kowalski", "Okafor", "Tanaka", "Silva", "Dubois",
        "Johansson", "Patel", "O'Brien", "Rossi", "Kim", "Novak", "Haddad", "Andersen", "López", "Cohen"]
DOMAINS = ["example.com", "mail.test", "acme.io", "globex.net", "initech.org", "umbrella.dev"]
CITIES = [("San Francisco", "CA", "94107", "US"), ("New York", "NY", "10001", "US"), ("Austin", "TX", "73301", "US"),
          ("London", None, "EC1A 1BB", "GB"), ("Berlin", None, "10115", "DE"), ("Paris", None, "75001", "FR"),
          ("Toronto", "ON", "M5H 2N2", "CA"), ("Sydney", "NSW", "2000", "AU"), ("Tokyo", None, "100-0001", "JP"),
          ("Dublin", None, "D02 X285", "IE"), ("Amsterdam", None, "1012 JS", "NL"), ("Madrid", None, "28001", "ES")]
STREETS = ["Market St", "Main St", "Oak Avenue", "King's Road", "Rue de Rivoli", "Unter den Linden", "Elm Street",
           "Queen St W", "George St", "Calle Mayor"]
CURRENCIES = ["usd"] * 6 + ["eur"] * 3 + ["gbp"] * 2 + ["cad", "aud", "jpy"]
COUNTRIES = ["US"] * 5 + ["GB", "DE", "FR", "CA", "AU", "IE", "NL", "ES", "JP"]
BRANDS = [("visa", "4242"), ("visa", "1881"), ("mastercard", "4444"), ("mastercard", "5100"), ("amex", "8431"),
          ("discover", "1117"), ("jcb", "0505"), ("unionpay", "0005")]
PRODUCTS = ["T-shirt", "Pro plan", "Starter plan", "Enterprise seat", "Coffee beans 1kg", "Consulting hour",
            "API calls (1k)", "Gift card", "Hoodie", "Support add-on", "Storage 100GB", "Annual license"]
WORDS = ["order", "invoice", "monthly", "subscription", "payment", "renewal", "upgrade", "credit", "refund",
         "shipping", "service", "annual", "deposit", "fee", "adjustment", "bundle"]
META_KEYS = ["order_id", "customer_ref", "source", "campaign", "plan_tier", "region", "internal_id"]
META_VALS = {"source": ["web", "ios", "android", "pos", "api"],
             "campaign": ["spring_sale", "bf2025", "referral", "none"],
             "plan_tier": ["basic", "pro", "enterprise"], "region": ["emea", "amer", "apac"]}

# Id prefixes of objects Stripe's example objects give none for (generated ID_PREFIXES come first).
PREFIX = {
    "account": "acct_", "apple_pay_domain": "apwc_", "application_fee": "fee_", "fee_refund": "fr_",
    "balance_transaction": "txn_", "billing_portal.configuration": "bpc_", "capability": "cap_",
    "charge": "ch_", "checkout.session": "cs_test_", "item": "li_", "coupon": "co_", "credit_note": "cn_",
    "credit_note_line_item": "cnli_", "customer": "cus_", "customer_balance_transaction": "cbtxn_",
    "customer_cash_balance_transaction": "ccsbtxn_", "payment_method": "pm_", "card": "card_",
    "bank_account": "ba_", "source": "src_", "tax_id": "txi_", "dispute": "dp_", "event": "evt_",
    "file_link": "link_", "file": "file_", "financial_connections.account_owner": "fcaowner_",
    "financial_connections.account": "fca_", "identity.verification_report": "vr_",
    "identity.verification_session": "vs_", "invoiceitem": "ii_", "line_item": "il_", "invoice": "in_",
    "issuing.authorization": "iauth_", "issuing.cardholder": "ich_", "issuing.card": "ic_",
    "issuing.dispute": "idp_", "issuing.settlement": "ise_", "issuing.transaction": "ipi_",
    "payment_intent": "pi_", "payment_link": "plink_", "payment_method_domain": "pmd_", "payout": "po_",
    "person": "person_", "plan": "plan_", "price": "price_", "product": "prod_", "promotion_code": "promo_",
    "quote": "qt_", "radar.early_fraud_warning": "issfr_", "radar.value_list_item": "rsli_",
    "radar.value_list": "rsl_", "refund": "re_", "reporting.report_run": "frr_", "review": "prv_",
    "scheduled_query_run": "sqr_", "setup_attempt": "setatt_", "setup_intent": "seti_", "shipping_rate": "shr_",
    "subscription_item": "si_", "subscription_schedule": "sub_sched_", "subscription": "sub_",
    "tax_code": "txcd_", "tax_rate": "txr_", "terminal.configuration": "tmc_", "terminal.location": "tml_",
    "terminal.reader": "tmr_", "test_helpers.test_clock": "clock_", "topup": "tu_", "transfer_reversal": "trr_",
    "transfer": "tr_", "treasury.credit_reversal": "credrev_", "treasury.debit_reversal": "debrev_",
    "treasury.financial_account": "fa_", "treasury.inbound_transfer": "ibt_", "treasury.outbound_payment": "obp_",
    "treasury.outbound_transfer": "obt_", "treasury.received_credit": "rc_", "treasury.received_debit": "rd_",
    "treasury.transaction_entry": "trxne_", "treasury.transaction": "trxn_", "usage_record_summary": "sis_",
    "webhook_endpoint": "we_", "mandate": "mandate_", "application": "ca_", "review_": "prv_",
    # objects newer than the 2023 examples (prefixes as Stripe's API reference shows their ids)
    "billing.alert": "alrt_", "billing.credit_balance_transaction": "cbtxn_", "billing.credit_grant": "credgr_",
    "billing.meter": "mtr_", "climate.order": "climorder_", "climate.product": "climsku_",
    "climate.supplier": "climsup_", "entitlements.active_entitlement": "ent_", "entitlements.feature": "feat_",
    "financial_connections.transaction": "fctxn_", "forwarding.request": "fwdreq_", "invoice_payment": "inpay_",
    "invoice_rendering_template": "inrtem_", "issuing.personalization_design": "iperz_",
    "issuing.physical_bundle": "ics_", "issuing.token": "intok_", "payment_method_configuration": "pmc_",
    "product_feature": "prodft_", "tax.registration": "taxreg_",
}
# id-ish field name -> prefix for ids that do not point to a stream the sandbox serves
FIELD_PREFIX = {"payment_method": "pm_", "source": "card_", "default_source": "card_", "application": "ca_",
                "destination": "ba_", "mandate": "mandate_", "on_behalf_of": "acct_", "account": "acct_",
                "test_clock": "clock_", "review": "prv_", "transfer": "tr_", "default_payment_method": "pm_",
                "latest_invoice": "in_", "invoice_item": "ii_", "balance_transaction": "txn_", "charge": "ch_",
                "customer": "cus_", "invoice": "in_", "subscription": "sub_", "price": "price_", "product": "prod_",
                "plan": "plan_", "payment_intent": "pi_", "setup_intent": "seti_", "coupon": "co_",
                "promotion_code": "promo_", "file": "file_", "refund": "re_", "payout": "po_", "dispute": "dp_",
                "subscription_item": "si_", "feature": "feat_", "meter": "mtr_"}


def prefix_for(object_type: str) -> str:
    if object_type in ID_PREFIXES:
        return ID_PREFIXES[object_type]
    if object_type in PREFIX:
        return PREFIX[object_type]
    last = object_type.split(".")[-1]
    return "".join(w[0] for w in last.split("_"))[:4] + "_"


class PH:
    """A per-object placeholder inside a variant template."""
    __slots__ = ("arg", "kind")

    def __init__(self, kind: str, arg: Any = None):
        self.kind = kind
        self.arg = arg

    def __repr__(self):
        return f"PH({self.kind!r}, {self.arg!r})"


def ts(delta: int = 0) -> PH:
    """A unix time `delta` seconds after the object's created."""
    return PH("ts", delta)


def settles(delta: int) -> PH:
    """A balance transaction's `status`: `pending` until `delta` seconds after its created (its
    `available_on`), `available` from then on, by the sandbox's clock and with no event, as
    Stripe settles funds."""
    return PH("settle", delta)


def tok(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def person(rng):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return first, last, f"{first} {last}", f"{first.lower()}.{last.lower().replace(chr(39), '')}@{rng.choice(DOMAINS)}"


def address(rng):
    city, state, postal, country = rng.choice(CITIES)
    return {"city": city, "country": country, "line1": f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
            "line2": rng.choice([None, None, f"Apt {rng.randint(1, 40)}", f"Suite {rng.randint(100, 900)}"]),
            "postal_code": postal, "state": state}


def phone(rng):
    return f"+1{rng.randint(200, 989)}{rng.randint(200, 999)}{rng.randint(1000, 9999)}"


def metadata(rng):
    out = {}
    for k in rng.sample(META_KEYS, rng.choice([0, 0, 1, 2, 3])):
        out[k] = rng.choice(META_VALS[k]) if k in META_VALS else str(rng.randint(1000, 999999))
    return out


def amount(rng):
    return rng.choice([500, 999, 1000, 1500, 2000, 2500, 4900, 9900, 12000, 19900, 49900, rng.randint(50, 250000)])


# Integer fields that are unix times although the SDK's docstring does not say "seconds since
# the Unix epoch" (it says "the date of that cancellation", "The timestamp at which …").
TIME_NAME = re.compile(r"(^|_)(at|date|time|start|end|created|updated)$")
TIME_NAMES = frozenset({"available_on", "billing_cycle_anchor", "billed_until", "capture_before", "computed_timestamp",
                        "current_deadline", "deadline", "deletes_after", "due_by", "next_payment_attempt",
                        "next_pending_invoice_item_invoice", "redeem_by", "result_available_until", "timestamp"})


def is_time_name(name: str) -> bool:
    return name in TIME_NAMES or TIME_NAME.search(name) is not None


def ts_delta_for(name: str, rng) -> int:
    n = name
    if n in ("created", "date", "effective_at", "finalized_at", "updated"):
        return 0 if n != "updated" else rng.randint(0, 86400 * 10)
    if n.endswith(("_end", "_until", "expires_at", "due_date", "arrival_date", "available_on", "cancel_at",
                   "expected_availability_date", "trial_end", "next_pending_invoice_item_invoice")):
        return rng.randint(86400, 86400 * 35)
    if n.endswith(("_start", "billing_cycle_anchor")):
        return rng.randint(0, 3600)
    return rng.randint(60, 86400 * 20)


def string_for(name: str, rng: random.Random, obj_type: str | None = None) -> str:
    n = name.lower()
    if n == "id":
        return prefix_for(obj_type or "x") + tok(rng, 24)
    if n in FIELD_PREFIX:
        return FIELD_PREFIX[n] + tok(rng, 24)
    if "email" in n:
        return person(rng)[3]
    if n in ("name", "customer_name", "account_holder_name", "cardholder_name", "business_name") or n.endswith("_name"):
        return person(rng)[2]
    if "phone" in n:
        return phone(rng)
    if n == "currency" or n.endswith("_currency"):
        return rng.choice(CURRENCIES)
    if n == "country" or n.endswith("_country"):
        return rng.choice(COUNTRIES)
    if n == "city":
        return rng.choice(CITIES)[0]
    if n == "state":
        return rng.choice(["CA", "NY", "TX", "WA", "ON", "NSW"])
    if n in ("postal_code", "zip"):
        return rng.choice(CITIES)[2]
    if n == "line1":
        return f"{rng.randint(1, 999)} {rng.choice(STREETS)}"
    if n == "line2":
        return f"Apt {rng.randint(1, 40)}"
    if n == "last4" or n.endswith("_last4"):
        return rng.choice(BRANDS)[1]
    if n == "brand" or n == "network":
        return rng.choice(BRANDS)[0]
    if n == "fingerprint":
        return tok(rng, 16)
    if n in ("ip", "ip_address") or n.endswith("_ip"):
        return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if n.endswith("url") or n == "domain_name" or n == "website":
        return f"https://{rng.choice(DOMAINS)}/{tok(rng, 10)}" if n != "domain_name" else f"shop.{rng.choice(DOMAINS)}"
    if "statement_descriptor" in n:
        return rng.choice(["ACME INC", "GLOBEX SUB", "INITECH", "UMBRELLA CO"])
    if n in ("description", "memo", "footer", "nickname", "comment", "reason_message"):
        return f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} #{rng.randint(100, 99999)}"
    if n in ("product_name", "label", "title"):
        return rng.choice(PRODUCTS)
    if n == "status":
        return rng.choice(["succeeded", "pending", "active"])
    if n in ("type", "method", "interval"):
        return {"interval": "month"}.get(n, "standard")
    if n == "client_secret":
        return "secret_" + tok(rng, 24)
    if n == "unit_amount_decimal" or n.endswith("_decimal"):
        return str(amount(rng))
    if n == "number" or n == "receipt_number":
        return f"{tok(rng, 8).upper()}-{rng.randint(1, 9999):04d}"
    if n in ("invoice_prefix",):
        return tok(rng, 8).upper()
    if n in ("tax_code",):
        return "txcd_10000000"
    if n.endswith("_id") or n in ("reference", "object_id", "network_transaction_id"):
        return tok(rng, 16)
    if n == "version" or n == "api_version":
        return API_VERSION
    return f"{rng.choice(WORDS)}_{tok(rng, 6).lower()}"


def int_for(name: str, rng: random.Random) -> int:
    n = name.lower()
    if n == "exp_month":
        return rng.randint(1, 12)
    if n == "exp_year":
        return rng.randint(2026, 2033)
    if ("amount" in n or n in ("balance", "fee", "net", "subtotal", "total", "tax", "unit_amount")
            or n.startswith(("total", "subtotal"))):
        return amount(rng)
    if n in ("quantity", "interval_count", "attempt_count", "count", "next_invoice_sequence", "days_until_due",
             "trial_period_days", "max_redemptions", "times_redeemed", "duration_in_months"):
        return rng.randint(1, 5)
    if "percent" in n:
        return rng.choice([5, 10, 15, 20, 25, 50])
    return rng.randint(0, 100)


def _types(schema):
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


SKIP_TOP = {"deleted"}  # only on deleted objects (`{id, object, deleted: true}`)


def is_list_object(schema) -> bool:
    props = schema.get("properties") or {}
    return "data" in props and "has_more" in props


MISSING = object()  # no example value for this field


def _p_null(ex, default: float) -> float:
    """How likely a nullable value is null: Stripe's example object says what is usually set."""
    if ex is MISSING:
        return default
    return 0.8 if ex is None else 0.1


def gen(schema: dict, name: str, rng: random.Random, depth: int = 0, p_null: float = 0.25, ex: Any = MISSING) -> Any:
    """A value for `schema` (may contain PH markers for unix times); `ex` is Stripe's example
    value at this place, when there is one."""
    if "anyOf" in schema:
        opts = [o for o in schema["anyOf"] if _types(o) != ["null"]]
        nullable = len(opts) < len(schema["anyOf"])
        # a nullable choice of objects (a charge's legacy `source`: an account, a bank account,
        # a card or a source) is mostly null, as Stripe's newer objects leave it
        p = 0.8 if nullable and len(opts) > 1 and ex is MISSING else p_null
        if nullable and rng.random() < _p_null(ex, p):
            return None
        if any(_types(o) == ["string"] for o in opts) and any("object" in _types(o) for o in opts):
            return string_for(name if name in FIELD_PREFIX else "id", rng, name)
        if not opts:
            return None
        pick = opts[0] if len(opts) == 1 or ex is not MISSING else rng.choice(opts)
        return gen(pick, name, rng, depth, p_null, ex)
    types = _types(schema)
    nonnull = [t for t in types if t != "null"]
    if "null" in types:
        # nested optional objects are mostly absent in real Stripe payloads
        p = p_null if depth < 2 or "object" not in nonnull else 0.6
        if not nonnull or rng.random() < _p_null(ex, p) or depth > 4:
            return None
    if "x-expandable" in schema:  # the id of an object of another resource
        return prefix_for(schema["x-expandable"][0]) + tok(rng, 24) if name not in FIELD_PREFIX \
            else string_for(name, rng)
    if "enum" in schema:
        vals = [v for v in schema["enum"] if v is not None]
        if vals:
            return rng.choice(vals)
    t = nonnull[0] if nonnull else "string"
    if schema.get("format") in ("date-time", "unix-time"):
        return ts(ts_delta_for(name, rng))
    if t == "string":
        return string_for(name, rng)
    if t == "integer":
        return ts(ts_delta_for(name, rng)) if is_time_name(name) else int_for(name, rng)
    if t == "number":
        return round(rng.uniform(0, 100), 2)
    if t == "boolean":
        return False if name == "livemode" else rng.random() < 0.5
    if t == "array":
        items = schema.get("items") or {"type": "string"}
        if depth > 3:
            return []
        if isinstance(ex, list):
            n = rng.choice([0, 0, 0, 1]) if not ex else rng.choice([1, 1, 2])
        else:
            n = rng.choice([0, 0, 1, 1, 2]) if depth < 2 else rng.choice([0, 0, 1])
        sub = ex[0] if isinstance(ex, list) and ex else MISSING
        return [gen(items, name[:-1] if name.endswith("s") else name, rng, depth + 1, p_null, sub) for _ in range(n)]
    if t == "object":
        addl = schema.get("additionalProperties")
        if not schema.get("properties") and isinstance(addl, dict):
            if name == "metadata" or ("string" in _types(addl) and "object" not in _types(addl)):
                return metadata(rng) if "string" in _types(addl) else {}
            return {c: gen(addl, name, rng, depth + 1, p_null)
                    for c in rng.sample(["usd", "eur"], rng.choice([0, 1, 1, 2]))}
        if name == "metadata":
            return metadata(rng)
        props = schema.get("properties")
        if not props:
            return {}
        if is_list_object(schema):
            return {"object": "list", "data": [], "has_more": False, "url": PH("url", name)}
        if set(props) >= {"line1", "city", "country"}:
            a = address(rng)
            return {k: a.get(k) for k in props}
        exd = ex if isinstance(ex, dict) else None
        optional = schema.get("optional") or ()
        variants = schema.get("variants") or ()
        chosen = _variant(schema, exd, rng) if variants else None
        out = {}
        for k, sub in props.items():
            if depth == 0 and k in SKIP_TOP:
                continue
            if k in variants:
                # one sub-object per `type` (a payment method's `card`, `sepa_debit`, …): only
                # the one the object's type names is there
                if k != chosen:
                    continue
                sub = {**sub, "type": [t for t in _types(sub) if t != "null"] or ["object"]}
            if k == "type" and chosen is not None:
                out[k] = chosen
                continue
            # an optional object that is never null is there only when it applies (a
            # payment method's `card`, a source's `ach_debit`): as in Stripe's example
            if (k in optional and _types(sub) == ["object"] and sub.get("properties")
                    and (exd.get(k) is None if exd is not None else rng.random() >= 0.2)):
                continue
            if k == "object" and "string" in _types(sub):
                enum = sub.get("enum") or ()
                out[k] = enum[0] if len(enum) == 1 else name
            else:
                out[k] = gen(sub, k, rng, depth + 1, p_null, exd.get(k, MISSING) if exd is not None else MISSING)
        return out
    return None


def _variant(schema: dict, exd: dict | None, rng: random.Random) -> str:
    """Which of an object's `variants` it carries: its example's type, else one of the types
    its `type` enum names (or of the variants themselves when `type` is any string)."""
    variants = schema["variants"]
    if exd is not None and exd.get("type") in variants:
        return exd["type"]
    kinds = [v for v in (schema["properties"].get("type", {}).get("enum") or ()) if v in variants]
    return rng.choice(kinds or variants)


def conforms(value: Any, schema: dict) -> bool:
    """Cheap structural check of `value` (PH allowed) against a schema."""
    if isinstance(value, PH):
        return True
    if "anyOf" in schema:
        return any(conforms(value, o) for o in schema["anyOf"])
    types = _types(schema)
    if value is None and "null" in types:
        return True
    if "enum" in schema and value not in schema["enum"]:
        return False
    if not types:
        return True
    for t in types:
        if t == "null" and value is None:
            return True
        if t == "string" and isinstance(value, str):
            return True
        if t == "boolean" and isinstance(value, bool):
            return True
        if t == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t == "array" and isinstance(value, list):
            items = schema.get("items")
            return items is None or all(conforms(v, items) for v in value)
        if t == "object" and isinstance(value, dict):
            props = schema.get("properties") or {}
            addl = schema.get("additionalProperties")
            for k, v in value.items():
                if k in props:
                    if not conforms(v, props[k]):
                        return False
                elif isinstance(addl, dict) and not conforms(v, addl):
                    return False
            return True
    return False
