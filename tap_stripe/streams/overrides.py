"""This project's choices about some tables, declared on the table's class, and the tables
that are not Stripe lists (the financial reports). A class here named like a generated one
replaces it (`tap_stripe.streams` picks the last definition of each table). To customise a
table, subclass its generated class here and set what differs: see docs/streams.md.
"""

import tap_stripe.streams.generated as generated
from tap_stripe.streams.base import ReportStream


class SubscriptionsStream(generated.SubscriptionsStream):
    """Stripe `/v1/subscriptions`, canceled ones included (Stripe lists only live ones by default)."""

    list_params = (("status", "all"),)


class BalanceTransactionsStream(generated.BalanceTransactionsStream):
    """A balance transaction goes from `pending` to `available` on its `available_on` date, with
    no event: pending ones are read again each run until they settle."""

    unsettled = (("status", "pending"),)


# Columns Stripe returns only when expanded (Striim's reader leaves them empty). Line items of
# payment links and quotes come through their child streams instead.

class CouponsStream(generated.CouponsStream):
    default_expand = ("applies_to", "currency_options")


class CustomersStream(generated.CustomersStream):
    default_expand = ("tax", "cash_balance", "invoice_credit_balance")


class PlansStream(generated.PlansStream):
    default_expand = ("tiers",)


class PricesStream(generated.PricesStream):
    default_expand = ("tiers", "currency_options")


# Child lists Stripe embeds in their parent only when the parent's request expands them
# ("includable"): a customer's `sources` and `tax_ids` since API version 2020-08-27
# (https://docs.stripe.com/upgrades#2020-08-27), the `line_items` of a Checkout Session, a
# payment link or a quote ("This field is not included by default. To include it in the
# response, expand the `line_items` field", https://docs.stripe.com/api/checkout/sessions/object),
# an account's `external_accounts`. The parent's list asks for them while the child is read, so
# a parent whose list fits in the first 10 items costs no request of its own.

class CustomerSourcesStream(generated.CustomerSourcesStream):
    embedded_when_expanded = True


class CustomerTaxIdsStream(generated.CustomerTaxIdsStream):
    embedded_when_expanded = True


class CheckoutSessionLineItemsStream(generated.CheckoutSessionLineItemsStream):
    embedded_when_expanded = True


class PaymentLinkLineItemsStream(generated.PaymentLinkLineItemsStream):
    embedded_when_expanded = True


class QuoteLineItemsStream(generated.QuoteLineItemsStream):
    embedded_when_expanded = True


class ExternalAccountsStream(generated.ExternalAccountsStream):
    embedded_when_expanded = True


# The financial reports (Striim's eleven report tables): one report run per interval.

class ReportBalanceSummaryStream(ReportStream):
    name = "report_balance_summary"


class ReportBalanceChangeFromActivitySummaryStream(ReportStream):
    name = "report_balance_change_from_activity_summary"


class ReportBalanceChangeFromActivityItemizedStream(ReportStream):
    name = "report_balance_change_from_activity_itemized"


class ReportPayoutsSummaryStream(ReportStream):
    name = "report_payouts_summary"


class ReportPayoutsItemizedStream(ReportStream):
    name = "report_payouts_itemized"


class ReportPayoutReconciliationSummaryStream(ReportStream):
    name = "report_payout_reconciliation_summary"


class ReportPayoutReconciliationItemizedStream(ReportStream):
    name = "report_payout_reconciliation_itemized"


class ReportPayoutReconciliationByIdSummaryStream(ReportStream):
    name = "report_payout_reconciliation_by_id_summary"


class ReportPayoutReconciliationByIdItemizedStream(ReportStream):
    name = "report_payout_reconciliation_by_id_itemized"


class ReportEndingBalanceReconciliationSummaryStream(ReportStream):
    name = "report_ending_balance_reconciliation_summary"


class ReportEndingBalanceReconciliationItemizedStream(ReportStream):
    name = "report_ending_balance_reconciliation_itemized"


# Lists newer than 2023-08-16 that need a choice.

class TaxLocationsStream(generated.TaxLocationsStream):
    """Stripe `/v1/tax/locations`: the list requires a `type`, whose only value is `performance`."""

    list_params = (("type", "performance"),)


class EntitlementsActiveEntitlementsStream(generated.EntitlementsActiveEntitlementsStream):
    """Stripe `/v1/entitlements/active_entitlements`, one request per customer emitted (customers
    are re-read in full each run by default): opt-in, for accounts that use Entitlements."""

    selected_by_default = False


class PaymentIntentAmountDetailsLineItemsStream(generated.PaymentIntentAmountDetailsLineItemsStream):
    """Stripe `/v1/payment_intents/{intent}/amount_details_line_items`, one request per payment
    intent emitted, for line items only Level 2/3 card data carries: opt-in."""

    selected_by_default = False
