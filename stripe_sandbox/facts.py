"""Facts about Stripe that its SDK and OpenAPI material do not carry, hand-written, each with its source.

Everything they do carry is generated into `resources.py`/`components.py` by
`scripts/generate_sandbox.py`; the report types are in `report_types.py`. Nothing here comes
from the tap (issue #15: the sandbox is an independent view of Stripe).
"""

from __future__ import annotations

DAY = 86400

# Events are listed and retrieved for 30 days.
# https://docs.stripe.com/api/events/list ("going back up to 30 days"); spec: GET /v1/events.
EVENT_RETENTION = 30 * DAY

# A list page holds `limit` objects, 1..100, 10 by default; lists are newest first.
# https://docs.stripe.com/api/pagination
DEFAULT_LIMIT = 10
MAX_LIMIT = 100

# `types[]` of GET /v1/events takes at most 20 names (spec: GET /v1/events `types`).
MAX_EVENT_TYPES = 20

# Child lists a parent object carries by default (the first page, `has_more` says whether
# there is more): (parent `object`, field). Other list fields of a parent are "includable"
# (returned only when expanded), e.g. a customer's `sources`, `subscriptions`, `tax_ids`
# since API version 2020-08-27 (https://docs.stripe.com/upgrades#2020-08-27), a Checkout
# Session's, Payment Link's or quote's `line_items` ("This field is not included by default.
# To include it in the response, expand the `line_items` field",
# https://docs.stripe.com/api/checkout/sessions/object), a charge's `refunds` since 2022-11-15
# (https://docs.stripe.com/upgrades#2022-11-15), an account's `external_accounts`.
EMBEDDED_BY_DEFAULT = frozenset({
    ("invoice", "lines"),            # https://docs.stripe.com/api/invoices/object#invoice_object-lines
    ("subscription", "items"),       # https://docs.stripe.com/api/subscriptions/object#subscription_object-items
    ("credit_note", "lines"),        # https://docs.stripe.com/api/credit_notes/object#credit_note_object-lines
    ("application_fee", "refunds"),  # https://docs.stripe.com/api/application_fees/object#application_fee_object-refunds
    ("transfer", "reversals"),       # https://docs.stripe.com/api/transfers/object#transfer_object-reversals
})

# Fields `expand[]` accepts although they hold no object (so `expandable_fields` omits them): includable
# fields that are not objects of their own. A customer's `invoice_credit_balance` (a map of
# currency -> amount) is returned only when expanded; the API reference marks it expandable
# (https://docs.stripe.com/api/customers/object#customer_object-invoice_credit_balance ;
# https://docs.stripe.com/expand). Keyed by `object`.
EXPANDABLE_BEYOND_SPEC = {"customer": frozenset({"invoice_credit_balance"})}

# Statuses a list leaves out when its `status` filter is not given: "If no value is supplied,
# all subscriptions that have not been canceled are returned" (spec: GET /v1/subscriptions
# `status`; https://docs.stripe.com/api/subscriptions/list).
STATUS_DEFAULT_EXCLUDE = {"subscription": frozenset({"canceled"})}

# Objects whose DELETE cancels them (they stay, with these fields set) instead of deleting:
# "Cancel a subscription" (spec: DELETE /v1/subscriptions/{subscription_exposed_id};
# https://docs.stripe.com/api/subscriptions/cancel), which sends customer.subscription.deleted.
# object -> (fields set, time fields set to the moment of the DELETE).
CANCELED_ON_DELETE = {"subscription": ({"status": "canceled"}, ("canceled_at", "ended_at"))}

# Rate limits (off unless a Sandbox is given rps/endpoint_rps): test mode allows 25 requests/s
# per account, and each endpoint 25 requests/s unless noted. https://docs.stripe.com/rate-limits
TEST_MODE_RPS = 25
ENDPOINT_RPS = 25
