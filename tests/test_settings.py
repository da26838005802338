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


# A value that must never show in a message: a secret pasted into the wrong setting.
LEAKED = "sk_live_" + "misplacedSecret123"  # a live key's form, split so no scanner takes it for one
WRONG_TYPE_OR_CHOICE = [
    ({"max_workers": LEAKED}, "max_workers", "an integer"),
    ({"request_timeout": LEAKED}, "request_timeout", "a number"),
    ({"schema_evolution": LEAKED}, "schema_evolution", "true or false"),
    ({"expand": LEAKED}, "expand", "an object"),
    ({"expand": {"charges": LEAKED}}, "expand.charges", "a list"),
    ({"expand": {"charges": [LEAKED, 7]}}, "expand.charges[1]", "a string"),
    ({"start_date": 20240131}, "start_date", "RFC 3339"),
    ({"reread_days": {"charges": LEAKED}}, "reread_days.charges", "a number"),
    ({"sensitive_data": {"categories": {"contact": 7}}}, "sensitive_data.categories.contact", "a string"),
    ({"on_permission_error": LEAKED}, "on_permission_error", "one of: skip, fail"),
    ({"updates_mode": LEAKED}, "updates_mode", "one of: refetch, snapshot"),
    ({"report_interval": LEAKED}, "report_interval", "one of: day, sync"),
    ({"connected_accounts": LEAKED}, "connected_accounts", '"all"'),
    ({"account_id": LEAKED}, "account_id", "acct_"),
    ({"account_ids": ["acct_1", LEAKED]}, "account_ids[1]", "acct_"),
    ({"account_shard": LEAKED, "account_ids": ["acct_1"]}, "account_shard", "i/N"),
    ({"report_versions": {"report_balance_summary": LEAKED}}, "report_versions.report_balance_summary", "version"),
    ({"max_requests_per_second": 0}, "max_requests_per_second", "greater than 0"),
    ({"reread_days": {"charges": -1}}, "reread_days.charges", "at least 0"),
]


@pytest.mark.parametrize("override,setting,expected", WRONG_TYPE_OR_CHOICE, ids=[s for _, s, _ in WRONG_TYPE_OR_CHOICE])
def test_a_wrong_type_or_choice_names_the_setting_not_the_value(override, setting, expected):
    """Types, choices, bounds and forms come from the settings' JSON Schema: one line that
    names the setting (its path) and what it expects, never the value given."""
    from conftest import SANDBOX_KEY

    from tap_stripe.errors import ConfigError
    from tap_stripe.settings import validate
    from tap_stripe.streams import SPECS

    with pytest.raises(ConfigError) as raised:
        validate({"api_key": SANDBOX_KEY, **override}, set(SPECS), {"charges": {"customer"}})
    message = str(raised.value)
    assert message.startswith(f"setting '{setting}' must be ") and expected in message, message
    assert "\n" not in message and LEAKED not in message and "20240131" not in message and " 7" not in message


def test_null_or_an_empty_text_setting_is_left_out():
    """Null (which every setting's type allows) is a setting left out, as is an empty text
    setting (an environment variable set empty): the default applies."""
    from conftest import make_settings

    settings = make_settings({"connected_accounts": "", "on_permission_error": None, "max_retries": None,
                              "ca_bundle": "", "schema_evolution": None})
    assert not settings.connected_accounts and settings.on_permission_error == "skip"
    assert settings.max_retries == 8 and settings.ca_bundle is None and settings.schema_evolution is True


def test_a_whole_number_read_as_a_decimal_is_an_integer():
    """The SDK reads a config file's `8.0` as a Decimal: an integer setting takes it."""
    from decimal import Decimal

    from conftest import make_settings

    from tap_stripe.errors import ConfigError

    settings = make_settings({"max_workers": Decimal("8.0"), "max_retries": 3.0, "request_timeout": Decimal("2.5")})
    assert (settings.max_workers, settings.max_retries, settings.request_timeout) == (8, 3, 2.5)
    with pytest.raises(ConfigError, match=r"^setting 'max_workers' must be an integer$"):
        make_settings({"max_workers": Decimal("8.5")})


@pytest.mark.parametrize("override", [{"api_key": "sk_test_abcdef123\n"}, {"api_key": " sk_test_abcdef123"},
                                      {"account_id": "acct_1\n"}, {"account_ids": ["acct_1\n"]},
                                      {"account_shard": "0/2\n", "account_ids": ["acct_1", "acct_2"]}],
                         ids=["key-newline", "key-space", "account-newline", "accounts-newline", "shard-newline"])
def test_a_setting_with_a_trailing_line_break_is_refused_without_its_value(override):
    """A key read from a file often ends with a line break; in a header it would make requests
    raise an error quoting the header, the key with it. Refused first, by name, never echoed."""
    from conftest import SANDBOX_KEY

    from tap_stripe.errors import ConfigError
    from tap_stripe.settings import validate
    from tap_stripe.streams import SPECS

    with pytest.raises(ConfigError) as raised:
        validate({"api_key": SANDBOX_KEY, **override}, set(SPECS), {})
    message = str(raised.value)
    assert message.startswith("setting '") and "\n" not in message and "abcdef123" not in message, message
