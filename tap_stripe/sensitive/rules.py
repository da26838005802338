"""The reviewed rules that classify a field as sensitive, by its path (used at build time by
`tap_stripe.sensitive.classify`; nothing else decides a field's category).

Categories name kinds of personal data; policies say what a run does with a category's
fields (`tap_stripe.sensitive.protect`).
"""

from __future__ import annotations

CATEGORIES = ("contact", "address", "government_id", "payment_instrument", "network", "free_text")
POLICIES = ("keep", "hash", "mask", "drop")
METADATA_KEY = "stripe-sensitive"
NESTED_METADATA_KEY = "stripe-sensitive-nested"

# Ordered (pattern, category) rules; the first whose pattern matches the END of a field's path
# wins; `None` means "not sensitive" (a reviewed exception). Patterns are tuples of segments,
# matched with fnmatch against the path's segments without `[]`. Only leaves are classified:
# scalars, arrays of scalars, free-form values (`*`) and objects the schema leaves opaque.
# Expandable `anyOf` fields themselves (an id or an object) are never classified: an id is
# not personal data; the expanded object's fields are classified instead.
#
# Notable decisions:
# - `country` stays non-sensitive everywhere (needed for tax and analytics, low identifying power);
#   address categories cover line1/line2/city/state/postal_code/town.
# - Businesses are not persons: merchant data on issuing transactions, `company.name`,
#   `business_profile.name`, bank addresses (`bank_address_*`), `bank_name`, `bic`, bank codes.
# - `statement_descriptor*`, product/price/coupon names, `nickname`, `display_name`, invoice
#   numbers, tracking numbers, `client_reference_id`: set by the merchant, not personal.
# - Every `description` is free text (merchants paste customer names and emails into them).
# - `dob`, `gender`, `nationality` and identity-document fields count as `government_id`.
# - `last4`-style fields are classified `payment_instrument`; `mask` keeps them as they are.
RULES: tuple[tuple[tuple[str, ...], str | None], ...] = (
    # reviewed exceptions first
    (("merchant_data", "*"), None),
    (("company", "name*"), None),
    (("options", "*"), None),  # identity verification options, not outputs
    (("business_profile", "name"), None),
    (("*", "country"), None),
    # network
    (("ip",), "network"),
    (("ip_address",), "network"),
    (("client_ip",), "network"),
    (("customer_purchase_ip",), "network"),
    (("user_agent",), "network"),
    (("ip_address_location", "*"), "network"),
    (("tos_acceptance",), "network"),  # opaque acceptance objects: ip, user agent, date
    (("user_terms_acceptance",), "network"),
    # address: parts of any object whose name contains "address", plus flattened forms
    (("*address*", "line1"), "address"),
    (("*address*", "line2"), "address"),
    (("*address*", "city"), "address"),
    (("*address*", "state"), "address"),
    (("*address*", "postal_code"), "address"),
    (("*address*", "town"), "address"),
    (("*address_line1",), "address"),  # card address_line1, report customer_address_line1, …
    (("*address_line2",), "address"),
    (("*address_city",), "address"),
    (("*address_state",), "address"),
    (("*address_postal_code",), "address"),
    (("address_zip",), "address"),
    (("billing_zip",), "address"),
    # whole addresses: strings (dispute evidence) or objects the schema leaves opaque
    (("address",), "address"),
    (("billing_address",), "address"),
    (("shipping_address",), "address"),
    (("customer_address",), "address"),
    (("registered_address",), "address"),
    (("verified_address",), "address"),
    (("shipping",), "address"),
    (("shipping_details",), "address"),
    (("customer_shipping",), "address"),
    # government_id
    (("tax_ids", "value"), "government_id"),
    (("tax_ids", "data", "value"), "government_id"),
    (("customer_tax_ids", "value"), "government_id"),
    (("account_tax_ids", "value"), "government_id"),
    (("document", "number"), "government_id"),
    (("tax_id",), "government_id"),
    (("id_number",), "government_id"),
    (("ssn_last_4",), "government_id"),
    (("vat",), "government_id"),
    (("vat_id",), "government_id"),
    (("dob",), "government_id"),  # opaque
    (("dob", "*"), "government_id"),
    (("gender",), "government_id"),
    (("nationality",), "government_id"),
    # payment_instrument
    (("fingerprint",), "payment_instrument"),
    (("last4",), "payment_instrument"),
    (("dynamic_last4",), "payment_instrument"),
    (("iban_last4",), "payment_instrument"),
    (("account_number_last4",), "payment_instrument"),
    (("exp_month",), "payment_instrument"),
    (("exp_year",), "payment_instrument"),
    (("card", "number"), "payment_instrument"),
    (("cvc",), "payment_instrument"),
    (("account_number",), "payment_instrument"),
    (("routing_number",), "payment_instrument"),
    (("refund_routing_number",), "payment_instrument"),
    (("sort_code",), "payment_instrument"),
    (("bsb_number",), "payment_instrument"),
    (("iban",), "payment_instrument"),
    (("refund_iban",), "payment_instrument"),
    (("clabe",), "payment_instrument"),
    (("account_holder_name",), "payment_instrument"),
    (("refund_account_holder_name",), "payment_instrument"),
    (("buyer_id",), "payment_instrument"),
    (("payer_id",), "payment_instrument"),
    (("cashtag",), "payment_instrument"),
    # contact
    (("*email",), "contact"),  # email, receipt_email, customer_email, payer_email, verified_email...
    (("customer_email_address",), "contact"),
    (("email_sent_to",), "contact"),
    (("*phone",), "contact"),  # phone, customer_phone, support_phone, verified_phone
    (("phone_number",), "contact"),
    (("customer_name",), "contact"),
    (("cardholder_name",), "contact"),
    (("payer_name",), "contact"),
    (("sender_name",), "contact"),
    (("passenger_name",), "contact"),
    (("verified_name",), "contact"),
    (("first_name*",), "contact"),
    (("last_name*",), "contact"),
    (("maiden_name",), "contact"),
    (("name_kana",), "contact"),
    (("name_kanji",), "contact"),
    (("full_name_aliases",), "contact"),
    (("shipping_first_name",), "contact"),
    (("shipping_last_name",), "contact"),
    (("billing_details",), "contact"),  # opaque person records
    (("customer_details",), "contact"),
    (("individual",), "contact"),
    (("owner",), "contact"),
    # free_text
    (("description",), "free_text"),
    (("metadata", "*"), "free_text"),
    (("footer",), "free_text"),
    (("memo",), "free_text"),
    (("notes",), "free_text"),
    (("comment",), "free_text"),
    (("explanation",), "free_text"),
    (("*_explanation",), "free_text"),
    (("cancellation_rebuttal",), "free_text"),
    (("uncategorized_text",), "free_text"),
    (("access_activity_log",), "free_text"),
    (("custom_fields", "value"), "free_text"),
    (("custom_fields", "text", "value"), "free_text"),
    (("custom_fields", "numeric", "value"), "free_text"),
)

# `name` is ambiguous (products, coupons, tax codes... have one): it is a person's name
# only inside an object that also holds contact or address data, or in these containers.
PERSON_NAME_HINTS = frozenset({"email", "phone", "address", "address_line1", "billing_address"})
PERSON_NAME_CONTAINERS = frozenset({"card", "cardholder", "owner", "shipping", "three_d_secure"})

# Root fields whose meaning depends on what the stream's object is.
STREAM_RULES: dict[tuple[str, str], str] = {
    ("customer_tax_ids", "value"): "government_id",
    # a Radar list item is an email, IP, card fingerprint... whatever the list holds
    ("radar_value_list_items", "value"): "free_text",
}
