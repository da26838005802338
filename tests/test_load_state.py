"""The state a run starts from (`TapStripe.load_state`): ours as it is, or another Stripe tap's
adopted for the one account it read, and refused when malformed."""

from __future__ import annotations

import logging

import pytest
from conftest import SANDBOX_KEY

from tap_stripe.engine.state import StateError
from tap_stripe.tap import TapStripe

SINGER_IO = {"bookmarks": {"charges": {"created": 1_700_000_000}, "charges_events": {"updates_created": 1_700_000_100}}}


def loaded(state, **config):
    tap = TapStripe(config={"api_key": SANDBOX_KEY, **config}, state=state, validate_config=False)
    return tap._stripe_state


def accounts_of(state, stream="charges"):
    return state["bookmarks"][stream]["accounts"]


@pytest.mark.parametrize(("config", "account"), [
    ({}, "default"),
    ({"account_id": "acct_1"}, "acct_1"),
    ({"account_ids": ["acct_2"]}, "acct_2"),
    ({"account_ids": ["acct_1", "acct_2"]}, "default"),  # several: not said which one it read
    ({"connected_accounts": "all"}, "default"),
])
def test_another_tap_s_state_is_adopted_for_the_one_account_read(config, account, caplog):
    with caplog.at_level(logging.INFO, logger="tap_stripe"):
        state = loaded(SINGER_IO, **config)
    assert accounts_of(state) == {account: {"created": 1_700_000_000, "events": 1_700_000_100}}
    assert any(m.startswith("The state is from singer-io tap-stripe") for m in caplog.messages)


def test_our_state_is_kept_as_it_is_and_a_malformed_one_refused(caplog):
    ours = {"bookmarks": {"charges": {"accounts": {"acct_9": {"created": 5}}}}}
    with caplog.at_level(logging.INFO, logger="tap_stripe"):
        assert accounts_of(loaded(ours, account_id="acct_1")) == {"acct_9": {"created": 5}}
    assert not [m for m in caplog.messages if "state is from" in m]
    with pytest.raises(StateError, match="must be unix seconds"):
        loaded({"bookmarks": {"charges": {"accounts": {"default": {"created": "soon"}}}}})
    assert loaded({}) == {}
