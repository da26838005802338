"""What a report stream is, offline: its family, its columns and their types, its schema and
keys. Discovery and the stream classes need only this module, which imports nothing that
talks to Stripe."""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- columns
# Column kinds: "decimal" (amount in major units, exact), "datetime" (time; `*_utc` in UTC,
# the others in the run's timezone), "integer", "string".
#
# Source: Stripe's report type pages, which list each family's columns by version:
#   https://docs.stripe.com/reports/report-types/balance
#   https://docs.stripe.com/reports/report-types/payout-reconciliation
# Every column those pages list for any version of the eleven families is below. The
# per-family lists are the columns this table takes as the default; a run intersects them
# with the live report type's `default_columns`, which is what Stripe's API says is default
# for the version the account gets (`plan.requested_columns`).
_DECIMAL = ("gross", "fee", "net", "net_amount", "customer_facing_amount")
_DATETIME = (
    "created_utc", "created", "available_on_utc", "available_on", "effective_at_utc", "effective_at",
    "automatic_payout_effective_at_utc", "automatic_payout_effective_at", "charge_created_utc",
    "charge_created", "payout_expected_arrival_date", "payout_reversed_at_utc", "payout_reversed_at",
)
_INTEGER = ("count",)
_STRING = (
    "balance_transaction_id", "category", "currency", "description", "reporting_category", "source_id",
    "customer_facing_currency", "automatic_payout_id", "customer_id", "customer_email", "customer_name",
    "customer_description", "charge_id", "payment_intent_id", "invoice_id", "invoice_number", "order_id",
    "subscription_id", "payment_method_type", "is_link", "card_brand", "card_funding", "card_country",
    "statement_descriptor", "dispute_reason", "connected_account_id", "connected_account_name",
    "connected_account_country", "connected_account_direct_charge_id", "destination_payment_id",
    "regulatory_tag", "trace_id", "trace_id_status", "payout_id", "payout_status", "payout_type",
    "payout_description", "payout_destination_id",
    "shipping_address_line1", "shipping_address_line2", "shipping_address_city", "shipping_address_state",
    "shipping_address_postal_code", "shipping_address_country",
    "card_address_line1", "card_address_line2", "card_address_city", "card_address_state",
    "card_address_postal_code", "card_address_country",
    "customer_address_line1", "customer_address_line2", "customer_address_city", "customer_address_state",
    "customer_address_postal_code", "customer_address_country",
    "customer_shipping_address_line1", "customer_shipping_address_line2", "customer_shipping_address_city",
    "customer_shipping_address_state", "customer_shipping_address_postal_code",
    "customer_shipping_address_country",
)
COLUMN_KINDS: dict[str, str] = {
    **{c: "decimal" for c in _DECIMAL}, **{c: "datetime" for c in _DATETIME},
    **{c: "integer" for c in _INTEGER}, **{c: "string" for c in _STRING},
}
"""Every documented column of the eleven families → kind. `*_metadata[key]` and unknown → string."""

_KIND_SCHEMA: dict[str, dict] = {
    "decimal": {"type": ["number", "null"]},
    "datetime": {"type": ["string", "null"], "format": "date-time"},
    "integer": {"type": ["integer", "null"]},
    "string": {"type": ["string", "null"]},
}

_SUMMARY = ("reporting_category", "currency", "count", "gross", "fee", "net")
_BALANCE_SUMMARY = ("category", "description", "net_amount", "currency")
# balance_change_from_activity.itemized.3 (also the core of the other itemized types)
_ACTIVITY_ITEMIZED = (
    "balance_transaction_id", "created_utc", "created", "available_on_utc", "available_on", "currency",
    "gross", "fee", "net", "reporting_category", "source_id", "description", "customer_facing_amount",
    "customer_facing_currency", "automatic_payout_id", "automatic_payout_effective_at_utc",
    "automatic_payout_effective_at", "customer_id", "customer_email", "customer_name",
    "customer_description", "charge_id", "payment_intent_id", "charge_created_utc", "charge_created",
    "invoice_id", "subscription_id", "payment_method_type", "card_brand", "card_funding", "card_country",
    "statement_descriptor", "dispute_reason", "connected_account_id", "connected_account_name",
    "connected_account_country",
)
# payouts.itemized.3
_PAYOUTS_ITEMIZED = (
    "payout_id", "effective_at_utc", "effective_at", "currency", "gross", "fee", "net", "reporting_category",
    "description", "payout_expected_arrival_date", "payout_status", "payout_reversed_at_utc",
    "payout_reversed_at", "payout_type", "payout_description", "payout_destination_id",
    "balance_transaction_id", "trace_id", "trace_id_status",
)
# payout_reconciliation.itemized.5 / by_id.itemized.4 / ending_balance_reconciliation.itemized.4
_RECON_ITEMIZED = (
    "automatic_payout_id", "automatic_payout_effective_at_utc", "automatic_payout_effective_at",
    "balance_transaction_id", "created_utc", "created", "available_on_utc", "available_on", "currency",
    "gross", "fee", "net", "reporting_category", "source_id", "description", "customer_facing_amount",
    "customer_facing_currency", "customer_id", "customer_email", "customer_name", "customer_description",
    "charge_id", "payment_intent_id", "charge_created_utc", "charge_created", "invoice_id",
    "subscription_id", "payment_method_type", "card_brand", "card_funding", "card_country",
    "statement_descriptor", "dispute_reason", "connected_account_id", "connected_account_name",
    "connected_account_country", "trace_id", "trace_id_status",
)
_BY_ID_ITEMIZED = tuple(c for c in _RECON_ITEMIZED if not c.startswith("automatic_payout_effective_at"))


def _cols(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((name, COLUMN_KINDS.get(name, "string")) for name in names)


@dataclass(frozen=True)
class ReportSpec:
    name: str
    """Stream name."""
    family: str
    """Report type without its version, e.g. `payouts.itemized`."""
    params: str
    """`interval` (interval_start + interval_end), `interval_end` (snapshot) or `payout`."""
    columns: tuple[tuple[str, str], ...]
    """(column, kind) for the default columns; `column_schema(kind)` is its JSON schema."""
    documented_version: int
    """The newest version the column table was reviewed against."""
    timezone_from: int | None
    """First version that accepts `parameters[timezone]` (None: no version does)."""
    itemized: bool
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


REPORT_STREAMS: tuple[ReportSpec, ...] = (
    ReportSpec("report_balance_summary", "balance.summary", "interval", _cols(_BALANCE_SUMMARY), 1, 1, False,
               "Balance summary: starting balance, activity, payouts and ending balance per currency."),
    ReportSpec("report_balance_change_from_activity_summary", "balance_change_from_activity.summary", "interval",
               _cols(_SUMMARY), 1, 1, False, "Balance change from activity, per reporting category."),
    ReportSpec("report_balance_change_from_activity_itemized", "balance_change_from_activity.itemized",
               "interval", _cols(_ACTIVITY_ITEMIZED), 3, 3, True,
               "Every balance transaction except payouts, with customer/charge details."),
    ReportSpec("report_payouts_summary", "payouts.summary", "interval", _cols(_SUMMARY), 1, 1, False,
               "Payouts per reporting category."),
    ReportSpec("report_payouts_itemized", "payouts.itemized", "interval", _cols(_PAYOUTS_ITEMIZED), 3, 3, True,
               "Every payout (and payout reversal) that affected the balance."),
    ReportSpec("report_payout_reconciliation_summary", "payout_reconciliation.summary", "interval",
               _cols(_SUMMARY), 1, 1, False, "Transactions settled in payouts of the interval, per category."),
    ReportSpec("report_payout_reconciliation_itemized", "payout_reconciliation.itemized", "interval",
               _cols(_RECON_ITEMIZED), 5, 4, True,
               "Every balance transaction settled in an automatic payout of the interval."),
    ReportSpec("report_payout_reconciliation_by_id_summary", "payout_reconciliation.by_id.summary", "payout",
               _cols(_SUMMARY), 1, None, False, "One payout's transactions per reporting category."),
    ReportSpec("report_payout_reconciliation_by_id_itemized", "payout_reconciliation.by_id.itemized", "payout",
               _cols(_BY_ID_ITEMIZED), 4, 4, True, "Every balance transaction settled in one payout."),
    ReportSpec("report_ending_balance_reconciliation_summary", "ending_balance_reconciliation.summary",
               "interval_end", _cols(_SUMMARY), 1, 1, False,
               "Transactions not yet paid out at the end of the interval, per category."),
    ReportSpec("report_ending_balance_reconciliation_itemized", "ending_balance_reconciliation.itemized",
               "interval_end", _cols(_RECON_ITEMIZED), 4, 3, True,
               "Every balance transaction not yet paid out at the end of the interval."),
)
REPORTS_BY_NAME: dict[str, ReportSpec] = {spec.name: spec for spec in REPORT_STREAMS}


def column_kind(column: str) -> str:
    return COLUMN_KINDS.get(column, "string")


def column_schema(kind: str) -> dict:
    return dict(_KIND_SCHEMA.get(kind, _KIND_SCHEMA["string"]))


# --------------------------------------------------------------------------- schema
_DT = {"type": ["string", "null"], "format": "date-time"}
_STR = {"type": ["string", "null"]}


def report_schema(spec: ReportSpec, columns: list[str] | None = None) -> dict:
    """The stream's JSON schema: the report columns (configured or default) + the tap's fields."""
    names = list(columns) if columns else spec.column_names
    properties: dict[str, dict] = {name: column_schema(column_kind(name)) for name in names}
    properties["_row_id"] = {"type": ["string"]}
    properties["_report_type"] = dict(_STR)
    properties["_report_run"] = dict(_STR)
    if spec.params == "interval":
        properties["_interval_start"] = dict(_DT)
    if spec.params in ("interval", "interval_end"):
        properties["_interval_end"] = dict(_DT)
    if spec.params == "payout":
        properties["_payout"] = dict(_STR)
    properties["_account_id"] = dict(_STR)
    properties["_updated_at"] = dict(_DT)
    return {"type": ["object"], "properties": properties}


def report_key_properties(spec: ReportSpec) -> tuple[str, ...]:
    return ("_row_id",)


def report_replication_key(spec: ReportSpec) -> str | None:
    """The record field that advances with the bookmark (for catalog metadata); None for single-payout
    reports, whose bookmark (the payout's `created`) is not a field of the rows."""
    return None if spec.params == "payout" else "_interval_end"
