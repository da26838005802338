"""Bad settings stop before any request, with one line that names the setting."""

import pytest
from conftest import tap_config

BAD = [
    ({"api_key": None}, "api_key"),
    ({"api_key": "not-a-stripe-key"}, "api_key"),
    ({"api_key": "pk_test_publishable"}, "api_key"),
    ({"start_date": "yesterday"}, "start_date"),
    ({"start_date": "2025-02-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"}, "end_date"),
    ({"expand": {"no_such_stream": ["customer"]}}, "expand"),
    ({"expand": {"charges": ["not_a_field"]}}, "expand.charges"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_workers": 0}, "max_workers"),
    ({"lookback_seconds": -5}, "lookback_seconds"),
    ({"request_timeout": -1}, "request_timeout"),
    ({"account_id": "cus_123"}, "account_id"),
    ({"account_shard": "3/3", "account_ids": ["acct_1"]}, "account_shard"),
    ({"api_url": "http://example.com"}, "api_url"),
    ({"full_resync_streams": ["nope"]}, "full_resync_streams"),
    ({"on_permission_error": "ignore"}, "on_permission_error"),
    ({"ca_bundle": "/no/such/file.pem"}, "ca_bundle"),
    ({"sensitive_data": {"categories": {"contact": "hash"}}}, "sensitive_hash_key"),
    ({"oauth_client_id": "ca_1"}, "oauth"),
    # settings the streams read when they are built: validated before that
    ({"expand": ["charges"]}, "expand"),
    ({"report_columns": ["gross"]}, "report_columns"),
]


@pytest.mark.parametrize("override,setting", BAD, ids=[s for _, s in BAD])
def test_bad_setting_is_one_line_and_sends_nothing(sandbox, run_tap, override, setting):
    config = {k: v for k, v in {**tap_config(sandbox), **override}.items() if v is not None}
    result = run_tap(config)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("tap-stripe: error:")]
    assert len(errors) == 1, result.stderr
    assert setting in errors[0]
    assert "Traceback" not in result.stderr
    assert sandbox.requests == [], "no request may be sent before the settings are valid"
    assert result.stdout == ""


def test_malformed_state_file_stops_the_run(sandbox, run_tap, tmp_path):
    bad_state = tmp_path / "bad.json"
    bad_state.write_text("{not json")
    result = run_tap(tap_config(sandbox), args=("--state", str(bad_state)))
    assert result.returncode != 0
    assert "state file" in result.stderr and "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_state_of_the_wrong_shape_stops_the_run(sandbox, run_tap):
    result = run_tap(tap_config(sandbox), state={"bookmarks": {"charges": {"accounts": {"default": {"created": "x"}}}}})
    assert result.returncode != 0
    assert "bookmarks.charges.accounts.default.created" in result.stderr


def test_malformed_catalog_file_stops_the_run(sandbox, run_tap, tmp_path):
    bad = tmp_path / "catalog.json"
    bad.write_text("[1, 2")
    result = run_tap(tap_config(sandbox), args=("--catalog", str(bad)))
    assert result.returncode != 0
    assert "catalog file" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_from_the_environment_shape_the_input_catalog(monkeypatch):
    """A catalog discovered for one account, run with several accounts set in the
    environment: keys gain `_account_id` as they do with the setting in the config file."""
    from conftest import SANDBOX_KEY, catalog_for

    from tap_stripe.tap import TapStripe

    monkeypatch.setenv("TAP_STRIPE_CONNECTED_ACCOUNTS", "all")
    tap = TapStripe(config={"api_key": SANDBOX_KEY}, catalog=catalog_for(["charges"]), parse_env_config=True)
    assert tap.streams["charges"].primary_keys == ["_account_id", "id"]
    assert tap.catalog.get_stream("charges").key_properties == ["_account_id", "id"]


def test_discovery_with_a_key_checks_the_settings_too(sandbox, run_tap):
    result = run_tap({**tap_config(sandbox), "report_columns": ["gross"]}, args=("--discover",))
    assert result.returncode != 0
    assert "setting 'report_columns'" in result.stderr and "Traceback" not in result.stderr
