"""singer-sdk's own standard tests, where they are meaningful for this tap.

The SDK's tap-level tests (CLI prints, discovery, connection dry run, final state) run against
a sandbox. Its per-stream tests exercise the SDK's sequential sync path, which this tap
replaces with its engine, and two of them cannot fail (see singer-sdk-notes.md in the
project's shared docs, ../shared/docs/, outside this repo); our own checks cover the same
ground over real runs: key uniqueness, schema validity and the final state in
tests/test_engine.py, the record path against the SDK's in tests/test_tap.py. The SDK builds
its test class at import, so the sandbox starts then and lives as long as the test process.
"""

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from conftest import SANDBOX_NOW, tap_config
from stripe_sandbox import Sandbox
from tap_stripe.tap import TapStripe

_SANDBOX = Sandbox(seed=3, scale=0.02, now=SANDBOX_NOW).start()

# The SDK's dry run selects every stream, the opt-in report streams too: a recent start keeps
# their report runs to a few days.
TestTapStripeStandard = get_tap_test_class(
    TapStripe,
    config=tap_config(_SANDBOX, start_date="2025-12-29T00:00:00Z"),
    parse_env_config=False,
    include_stream_tests=False,
    include_stream_attribute_tests=False,
    suite_config=SuiteConfig(max_records_limit=5),
)
