"""singer-sdk's own standard tests, where they can fail and mean something for this tap.

Tap level: CLI prints, discovery (and re-instantiation with that catalog), and the
connection dry run. Stream level, for every stream: the schema is a valid JSON Schema, the
stream returns records, every record key is in the transformed (SCHEMA) schema, and every
record validates against the stream's schema. Attribute level: every date-time property
parses as one (the installed jsonschema has no date-time format checker, so validation
alone does not check them).

The SDK's attribute tests are one test object for all their (stream, property) parameters,
and `non_null_attribute_values` is a cached_property on it: every parameter after the first
re-checks the first one's values (a `created` that is not a date passes). `IsDateTime` below
is the SDK's test reading each parameter's own values.

Left out, and why:
- `valid_final_state` (tap) and `primary_keys` (stream) can never fail: the first looks for
  `progress_markers` among the STATE message's envelope keys, the second puts generator
  objects into a set (see singer-sdk-notes.md in the project's shared docs). Our own tests
  check both for real: key uniqueness and a final state without progress markers over whole
  runs in tests/test_engine.py.
- `transformed_catalog_schema_matches_record` only warns; a schema property no sampled record
  fills is normal for Stripe (nullable, optional, expandable fields).
- the other attribute tests (`is_integer`, `is_numeric`, `is_boolean`, `is_object`,
  `not_null`) check one JSON-schema type keyword each, which `record_matches_stream_schema`
  already checks for every property at every depth.

The SDK's runner is a dry run (`run_sync_dry_run`, 5 records a stream) through the SDK's
own stream path, where each stream's records come from this tap's engine (`collect`). It
selects every stream, the opt-in report streams too: a recent start keeps their report runs
to a few days. The SDK builds its test class at import, so the sandbox starts then and lives
as long as the test process.
"""

from conftest import SANDBOX_NOW, catalog_for, tap_config
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.tap_tests import (
    AttributeIsDateTimeTest,
    StreamRecordMatchesStreamSchema,
    StreamRecordSchemaMatchesCatalogTest,
    StreamReturnsRecordTest,
    StreamSchemaIsValidTest,
    TapCLIPrintsTest,
    TapDiscoveryTest,
    TapStreamConnectionTest,
)

from stripe_sandbox import Sandbox
from tap_stripe.tap import SPECS, TapStripe


class IsDateTime(AttributeIsDateTimeTest):
    """The SDK's `is_datetime`, without the cache shared across parameters."""

    @property
    def non_null_attribute_values(self) -> list:
        return [r[self.attribute_name] for r in self.stream_records if r.get(self.attribute_name) is not None]


# All history in the last two days, so the recent start finds every stream's objects.
_SANDBOX = Sandbox(seed=3, scale=0.02, now=SANDBOX_NOW, history_days=2, accounts=1).start()
_CONFIG = tap_config(_SANDBOX, start_date="2025-12-29T00:00:00Z")

# The payout reports have no rows here: at this scale the sandbox has a single payout, still
# in transit (their rows are paid payouts). Every other stream must return records.
NO_RECORDS = sorted(name for name in SPECS if name.startswith("report_payout"))

TestTapStripeStandard = get_tap_test_class(
    TapStripe,
    config=_CONFIG,
    # Every stream selected in the catalog, as the dry run selects them: the SDK's mapper then
    # holds each stream's whole schema (with the discovered catalog, the opt-in report streams'
    # transformed schemas are empty, their records checked against nothing).
    catalog=catalog_for(list(SPECS), _CONFIG),
    parse_env_config=False,
    include_tap_tests=False,
    include_stream_tests=False,
    include_stream_attribute_tests=False,
    custom_suites=[
        SingerTestSuite(kind="tap", tests=[TapCLIPrintsTest, TapDiscoveryTest, TapStreamConnectionTest]),
        SingerTestSuite(kind="tap_stream", tests=[StreamSchemaIsValidTest, StreamReturnsRecordTest,
                                                  StreamRecordSchemaMatchesCatalogTest,
                                                  StreamRecordMatchesStreamSchema]),
        SingerTestSuite(kind="tap_stream_attribute", tests=[IsDateTime]),
    ],
    suite_config=SuiteConfig(max_records_limit=5, ignore_no_records_for_streams=NO_RECORDS),
)
