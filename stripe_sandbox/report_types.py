"""Stripe's financial report types (Reporting API v1), as Stripe's documentation lists them.

Hand-written: the OpenAPI spec has the report run and report type objects but not the report
types themselves, their run parameters or their CSV columns. Sources (stored copies):

- Balance report types: https://docs.stripe.com/reports/report-types/balance
- Payout reconciliation report types: https://docs.stripe.com/reports/report-types/payout-reconciliation
- Report types reference (run parameters, availability rules): https://stripe.com/docs/reports/report-types
- Reports API (interval rules, CSV amounts in major units): https://docs.stripe.com/reports/api

Kept apart from the tap on purpose (issue #15): the sandbox serves what these pages say, the
tap reads what it believes they say, and the tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportFamily:
    versions: int
    """Versions 1..versions are offered (the newest the pages document)."""
    params: str
    """Required run parameters: `interval` (interval_start and interval_end), `interval_end`
    (a snapshot at the end), or `payout` (one payout)."""
    timezone_from: int | None
    """First version that takes `parameters[timezone]`; None: no version does."""
    columns: tuple[str, ...]
    """Default columns of the newest version, in the CSV's order."""
    optional: tuple[str, ...] = ()
    """Further columns the newest version accepts in `parameters[columns]`."""


# Columns that give a time in the run's timezone; their `_utc` twins are in UTC. A version
# without a timezone parameter has only the UTC ones.
LOCAL_TIME_COLUMNS = frozenset({"created", "available_on", "effective_at", "automatic_payout_effective_at",
                                "charge_created", "payout_reversed_at"})

_SUMMARY = ("reporting_category", "currency", "count", "gross", "fee", "net")
_ADDRESSES = tuple(f"{who}_{part}" for who in ("customer_shipping_address", "shipping_address", "card_address",
                                               "customer_address")
                   for part in ("line1", "line2", "city", "state", "postal_code", "country"))
_CUSTOMER_AND_CHARGE = (
    "customer_id", "customer_email", "customer_name", "customer_description", "charge_id", "payment_intent_id",
    "charge_created_utc", "charge_created", "invoice_id", "subscription_id", "payment_method_type", "card_brand",
    "card_funding", "card_country", "statement_descriptor", "dispute_reason", "connected_account_id",
    "connected_account_name", "connected_account_country",
)
_MORE = ("regulatory_tag", "invoice_number", "order_id", "is_link", "connected_account_direct_charge_id",
         "destination_payment_id", *_ADDRESSES)
_TRANSACTION = ("balance_transaction_id", "created_utc", "created", "available_on_utc", "available_on", "currency",
                "gross", "fee", "net", "reporting_category", "source_id", "description", "customer_facing_amount",
                "customer_facing_currency")
_PAYOUT_OF_TRANSACTION = ("automatic_payout_id", "automatic_payout_effective_at_utc", "automatic_payout_effective_at")

FAMILIES: dict[str, ReportFamily] = {
    # https://docs.stripe.com/reports/report-types/balance
    "balance.summary": ReportFamily(1, "interval", 1, ("category", "description", "net_amount", "currency")),
    "balance_change_from_activity.summary": ReportFamily(1, "interval", 1, _SUMMARY),
    "balance_change_from_activity.itemized": ReportFamily(
        3, "interval", 3, _TRANSACTION + _PAYOUT_OF_TRANSACTION + _CUSTOMER_AND_CHARGE, _MORE),
    "payouts.summary": ReportFamily(1, "interval", 1, _SUMMARY),
    "payouts.itemized": ReportFamily(
        3, "interval", 3,
        ("payout_id", "effective_at_utc", "effective_at", "currency", "gross", "fee", "net", "reporting_category",
         "description", "payout_expected_arrival_date", "payout_status", "payout_reversed_at_utc",
         "payout_reversed_at", "payout_type", "payout_description", "payout_destination_id",
         "balance_transaction_id", "trace_id", "trace_id_status")),
    # https://docs.stripe.com/reports/report-types/payout-reconciliation
    "payout_reconciliation.summary": ReportFamily(1, "interval", 1, _SUMMARY),
    "payout_reconciliation.itemized": ReportFamily(
        5, "interval", 4,
        _PAYOUT_OF_TRANSACTION + _TRANSACTION + _CUSTOMER_AND_CHARGE + ("trace_id", "trace_id_status"), _MORE),
    "payout_reconciliation.by_id.summary": ReportFamily(1, "payout", None, _SUMMARY),
    "payout_reconciliation.by_id.itemized": ReportFamily(
        4, "payout", 4,
        ("automatic_payout_id", *_TRANSACTION, *_CUSTOMER_AND_CHARGE, "trace_id", "trace_id_status"), _MORE),
    "ending_balance_reconciliation.summary": ReportFamily(1, "interval_end", 1, _SUMMARY),
    "ending_balance_reconciliation.itemized": ReportFamily(
        4, "interval_end", 3,
        _PAYOUT_OF_TRANSACTION + _TRANSACTION + _CUSTOMER_AND_CHARGE + ("trace_id", "trace_id_status"), _MORE),
}

# Run parameters the spec's `financial_reporting_finance_report_run_run_parameters` has.
RUN_PARAMETERS = frozenset({"interval_start", "interval_end", "payout", "timezone", "columns", "currency",
                            "reporting_category", "decimal_separator", "connected_account"})

# Zero-decimal currencies: CSV amounts are in major units, which for these are the API's
# integers. https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                          "vuv", "xaf", "xof", "xpf"})


def default_columns(family: str, version: int) -> list[str]:
    """A version's default columns: the newest's, without the local-time ones before the
    version that takes a timezone."""
    spec = FAMILIES[family]
    columns = list(spec.columns)
    if spec.timezone_from is None or version < spec.timezone_from:
        columns = [c for c in columns if c not in LOCAL_TIME_COLUMNS]
    return columns


def accepts_column(family: str, column: str) -> bool:
    """Whether `parameters[columns]` of this family may name `column` (`*_metadata[key]` too)."""
    spec = FAMILIES[family]
    if column in spec.columns or column in spec.optional:
        return True
    base = column.split("[", 1)[0]
    return base.endswith("_metadata") and column.endswith("]") and "[" in column
