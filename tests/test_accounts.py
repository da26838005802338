"""Connect platforms and OAuth: many accounts in one run, shards, token exchange."""

import pytest
from conftest import SANDBOX_NOW, TargetModel, catalog_for, expected_rows, tap_config

from tap_stripe.api.accounts import shard_of

STREAMS = ["charges", "customers", "products"]


@pytest.fixture
def platform():
    from stripe_sandbox import Sandbox

    with Sandbox(seed=11, scale=0.03, now=SANDBOX_NOW, accounts=4, history_days=120) as sb:
        yield sb


def by_account(result, stream):
    grouped: dict = {}
    for record in result.records(stream):
        grouped.setdefault(record["_account_id"], set()).add(record["id"])
    return grouped


def test_all_connected_accounts_are_read_and_tagged(platform, run_tap):
    result = run_tap(tap_config(platform, connected_accounts="all"), catalog=catalog_for([*STREAMS, "accounts"]))
    assert result.returncode == 0, result.stderr
    accounts = platform.account_ids()
    for stream in STREAMS:
        got = by_account(result, stream)
        assert set(got) == set(accounts), stream
        for account in accounts:
            assert got[account] == set(expected_rows(platform, stream, account)), (stream, account)
    # Connect's own table is read once, from the platform.
    assert {r["id"] for r in result.records("accounts")} == set(accounts)
    # ... and names the platform's own account (GET /v1/account), not null.
    own = platform.store.account_id(0)
    assert own.startswith("acct_") and own not in accounts
    assert {r["_account_id"] for r in result.records("accounts")} == {own}
    bookmarks = result.last_state["bookmarks"]["charges"]["accounts"]
    assert set(bookmarks) == set(accounts)
    schema = next(m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == "charges")
    assert schema["key_properties"] == ["_account_id", "id"]


def test_an_added_account_gets_its_history_while_the_others_stay_incremental(platform, run_tap):
    first_two, third = platform.account_ids()[:2], platform.account_ids()[2]
    catalog = catalog_for(["charges"])
    first = run_tap(tap_config(platform, account_ids=first_two), catalog=catalog)
    platform.advance(3600)
    new_charge = platform.create("charges", account=first_two[0])
    platform.advance(60)
    second = run_tap(tap_config(platform, account_ids=[*first_two, third]), catalog=catalog, state=first.last_state)
    got = by_account(second, "charges")
    assert got[first_two[0]] == {new_charge["id"]}
    assert first_two[1] not in got
    assert got[third] == set(expected_rows(platform, "charges", third))
    assert set(second.last_state["bookmarks"]["charges"]["accounts"]) == {*first_two, third}


def test_shards_cover_every_account_exactly_once(platform, run_tap):
    catalog = catalog_for(["products", "accounts"])
    seen: dict[str, int] = {}
    accounts_rows = 0
    for index in range(3):
        result = run_tap(tap_config(platform, connected_accounts="all", account_shard=f"{index}/3"), catalog=catalog)
        assert result.returncode == 0, result.stderr
        for account in by_account(result, "products"):
            seen[account] = seen.get(account, 0) + 1
        accounts_rows += len(result.records("accounts"))
    assert seen == {account: 1 for account in platform.account_ids()}
    assert accounts_rows == len(platform.account_ids()), "the platform's tables are read by shard 0 only"


def test_shards_are_stable_when_an_account_is_added():
    accounts = [f"acct_{i:016d}" for i in range(200)]
    before = {a: shard_of(a, 3) for a in accounts}
    after = {a: shard_of(a, 3) for a in [*accounts, "acct_new0000000001"]}
    assert all(after[a] == before[a] for a in accounts)
    assert set(before.values()) == {0, 1, 2}


def oauth_config(platform, token, **settings):
    config = tap_config(platform, oauth_client_id="ca_sandbox", oauth_client_secret="sk_test_sandbox",
                        oauth_refresh_token=token, oauth_url=platform.url, **settings)
    config.pop("api_key")
    return config


def test_oauth_exchanges_the_refresh_token_and_reads_the_connected_account(platform, run_tap):
    account = platform.account_ids()[1]
    token = platform.issue_refresh_token(account)
    result = run_tap(oauth_config(platform, token), catalog=catalog_for(["charges", "accounts", "radar_value_lists"]))
    assert result.returncode == 0, result.stderr
    assert {r["id"] for r in result.records("charges")} == set(expected_rows(platform, "charges", account))
    assert {r["_account_id"] for r in result.records("charges")} == {account}
    assert "OAuth tokens cannot read accounts, radar_value_lists" in result.stderr
    assert result.records("accounts") == []
    assert token not in result.stderr + result.stdout


def test_oauth_token_expiring_mid_run_is_refreshed(platform, run_tap):
    account = platform.account_ids()[0]
    token = platform.issue_refresh_token(account)
    platform.expire_access_tokens(after_uses=3)
    result = run_tap(oauth_config(platform, token, max_workers=1),
                     catalog=catalog_for(["charges", "customers", "products"]))
    assert result.returncode == 0, result.stderr
    assert "Refreshed the OAuth access token" in result.stderr
    assert platform.app.oauth.exchanges >= 2
    model = TargetModel().apply(result.messages)
    assert set(model.rows("charges")) == set(expected_rows(platform, "charges", account))


def test_revoked_refresh_token_fails_with_one_clear_line(platform, run_tap):
    token = platform.issue_refresh_token(platform.account_ids()[0])
    platform.revoke_refresh_token(token)
    result = run_tap(oauth_config(platform, token), catalog=catalog_for(["charges"]))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-stripe: error:")]
    assert len(errors) == 1 and "invalid_grant" in errors[0] and "reconnect" in errors[0]
    assert token not in result.stderr


def test_concurrent_requests_rejected_together_refresh_the_token_once(run_tap):
    from stripe_sandbox import Sandbox

    with Sandbox(seed=5, now=SANDBOX_NOW, accounts=1, latency_ms=20, volumes={"charges": 3000}) as sb:
        token = sb.issue_refresh_token(sb.account_ids()[0])
        sb.expire_access_tokens(after_uses=10)
        result = run_tap(oauth_config(sb, token, max_workers=8), catalog=catalog_for(["charges"]))
        assert result.returncode == 0, result.stderr
        assert len(result.records("charges")) == 3000
        api_requests = sum(1 for r in sb.requests if r["path"].startswith("/v1/"))
        # One exchange to start, then one per token worn out (10 requests each), not one per
        # thread whose request the worn-out token failed.
        assert 2 <= sb.app.oauth.exchanges <= 2 + api_requests // 10, (sb.app.oauth.exchanges, api_requests)
