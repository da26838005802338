"""Fixtures shared by the whole test tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Test tiers (pyproject.toml registers the markers): `make test-fast` runs `-m unit`, `make test`
# all three. A test marked with a tier keeps it; every other test gets one here: `external` by
# module (it needs PostgreSQL, DuckDB, Meltano or a package build), `e2e` when it runs the tap or
# a sandbox end to end (a fixture that starts one, or a module all of whose tests do), else `unit`.
TIERS = ("unit", "e2e", "external")
EXTERNAL_MODULES = {"test_targets", "test_meltano", "test_packaging", "test_demo"}
E2E_MODULES = {
    "test_sdk_standard",  # the SDK's suite on a sandbox started at import
    "test_simulation",  # random histories run through the tap into a target model
}
E2E_FIXTURES = {"run_tap", "sandbox", "session_sandbox", "sb", "client", "c"}


def tier_of(module: str, fixtures: set[str] | list[str], marked: list[str]) -> str:
    """The one tier of a test in `module` using `fixtures`, already marked with `marked` tiers."""
    if len(marked) > 1:
        raise pytest.UsageError(f"marked with several tiers: {', '.join(marked)}")
    if marked:
        return marked[0]
    if module in EXTERNAL_MODULES:
        return "external"
    if module in E2E_MODULES or E2E_FIXTURES & set(fixtures):
        return "e2e"
    return "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        marked = [m.name for m in item.iter_markers() if m.name in TIERS]
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        try:
            tier = tier_of(module, item.fixturenames, marked)
        except pytest.UsageError as error:
            raise pytest.UsageError(f"{item.nodeid}: {error}") from None
        if not marked:
            item.add_marker(getattr(pytest.mark, tier))


# Stripe's OpenAPI material the generators and their tests read (data/stripe-openapi/README.md).
OPENAPI_DIR = ROOT / "data" / "stripe-openapi"


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict] = field(default_factory=list)

    def records(self, stream: str | None = None) -> list[dict]:
        return [m["record"] for m in self.messages
                if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)]

    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self) -> dict | None:
        states = self.states()
        return states[-1] if states else None


def parse_messages(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def run_tap(tmp_path):
    """Run `tap-stripe` in a subprocess like a pipeline would; return its messages."""

    def run(config: dict, *, state: dict | None = None, catalog: dict | None = None,
            args: tuple[str, ...] = (), env: dict | None = None, timeout: float = 300) -> TapRun:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        command = [sys.executable, "-m", "tap_stripe", "--config", str(config_path), *args]
        if state is not None:
            state_path = tmp_path / "state.json"
            state_path.write_text(json.dumps(state))
            command += ["--state", str(state_path)]
        if catalog is not None:
            catalog_path = tmp_path / "catalog.json"
            catalog_path.write_text(json.dumps(catalog))
            command += ["--catalog", str(catalog_path)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, cwd=tmp_path)
        messages = parse_messages(proc.stdout) if proc.returncode == 0 or proc.stdout else []
        return TapRun(proc.returncode, proc.stdout, proc.stderr, messages)

    return run


SANDBOX_KEY = "sk_test_sandbox"
SANDBOX_NOW = 1767225600  # 2026-01-01T00:00:00Z: the sandbox clock every test starts from


def tap_config(sandbox, **settings) -> dict:
    """A config for the tap against `sandbox`, with limits out of the way unless set."""
    return {"api_key": SANDBOX_KEY, "api_url": sandbox.url, "files_url": sandbox.url, "max_requests_per_second": 2000,
            "max_requests_per_second_per_endpoint": 2000, "progress_interval_seconds": 0,
            "max_backoff_seconds": 0.2, **settings}


def make_settings(config: dict | None = None, **overrides):
    """Real `Settings`, as `settings.validate` makes them from a sandbox key (and `config`), with
    `overrides` of their fields (`dataclasses.replace`): for tests that build the engine's parts."""
    import dataclasses

    from tap_stripe.settings import validate
    from tap_stripe.streams import SPECS

    expandable = {spec.name: {f for f, _ in spec.expandable} | set(spec.default_expand) for spec in SPECS.values()}
    settings = validate({"api_key": SANDBOX_KEY, **(config or {})}, set(SPECS), expandable)
    return dataclasses.replace(settings, **overrides)


def catalog_for(streams: list[str], config: dict | None = None) -> dict:
    """The tap's catalog with only `streams` selected."""
    from tap_stripe.tap import TapStripe

    catalog = TapStripe(config={"api_key": SANDBOX_KEY, **(config or {})}, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


@pytest.fixture
def sandbox():
    """A small sandbox on an ephemeral loopback port, its clock at SANDBOX_NOW."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=3, scale=0.05, now=SANDBOX_NOW, history_days=200) as sb:
        yield sb


class TargetModel:
    """What a Singer target builds from the messages: upsert by key in message order,
    soft deletes applied, rows of older table versions dropped on ACTIVATE_VERSION."""

    def __init__(self):
        self.keys: dict[str, list[str]] = {}
        self.tables: dict[str, dict[tuple, tuple[dict, int | None]]] = {}

    def apply(self, messages: list[dict]) -> TargetModel:
        for message in messages:
            kind, stream = message["type"], message.get("stream")
            if kind == "SCHEMA":
                self.keys[stream] = message["key_properties"]
                self.tables.setdefault(stream, {})
            elif kind == "RECORD":
                assert stream in self.keys, f"RECORD of {stream} before its SCHEMA"
                record = message["record"]
                key = tuple(record[k] for k in self.keys[stream]) if self.keys[stream] else (len(self.tables[stream]),)
                if record.get("deleted") is True:
                    self.tables[stream].pop(key, None)
                else:
                    self.tables[stream][key] = (record, message.get("version"))
            elif kind == "ACTIVATE_VERSION":
                table = self.tables.get(stream, {})
                for key in [k for k, (_, v) in table.items() if v is not None and v != message["version"]]:
                    del table[key]
        return self

    def rows(self, stream: str) -> dict[str, dict]:
        return {record["id"]: record for record, _ in self.tables.get(stream, {}).values()}


def expected_rows(sandbox, stream: str, account=None) -> dict[str, dict]:
    """The sandbox's truth for `stream`, shaped the way the tap emits it: with the top-level
    fields its schema lacks that schema evolution (on by default) adds — a value, a field's
    name, not a secret's — such as the `metadata` tests set on objects without one."""
    from tap_stripe.output.evolution import FIELD_NAME, looks_secret, scrubbed
    from tap_stripe.output.records import RecordShaper
    from tap_stripe.tap import SPECS, load_schema

    shaper = RecordShaper(load_schema(stream), SPECS[stream].created_field).keeping_unknown()
    rows = {}
    for obj in sandbox.truth(stream, account):
        record = shaper.shape(obj, account)
        for key in [k for k in record if k not in shaper.known]:
            if record[key] is None or not FIELD_NAME.fullmatch(key) or looks_secret(key):
                del record[key]
            else:
                record[key] = scrubbed(record[key])
        rows[obj["id"]] = record
    return rows


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("_updated_at", "_account_id")}


class SandboxClient:
    """A bare HTTP client of the sandbox, for the sandbox's own tests."""

    def __init__(self, sb, key=SANDBOX_KEY):
        import requests

        self.sb = sb
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {key}"

    def get(self, path, params=None, **headers):
        return self.s.get(self.sb.url + path, params=params, headers=headers, timeout=10)

    def all(self, path, params=None, **headers):
        base = list(params.items()) if isinstance(params, dict) else list(params or [])
        out, cursor = [], None
        while True:
            p = base + [("limit", 100)] + ([("starting_after", cursor)] if cursor else [])
            r = self.get(path, p, **headers)
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(body["data"])
            if not body["has_more"]:
                return out
            cursor = body["data"][-1]["id"]


@pytest.fixture(scope="session")
def session_sandbox():
    """One read-only sandbox shared by a session: 2 connected accounts, fixed data."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=7, scale=0.2, now=SANDBOX_NOW, accounts=2, volumes={"charges": 250, "events": 300}) as sb:
        yield sb


@pytest.fixture
def sb():
    """A fresh small sandbox per test (for mutations, faults, limits)."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=3, scale=0.05, now=SANDBOX_NOW, volumes={"customers": 30, "charges": 40, "events": 50}) as s:
        yield s


@pytest.fixture
def client(session_sandbox):
    return SandboxClient(session_sandbox)


@pytest.fixture
def c(sb):
    return SandboxClient(sb)


def assert_matches(model: TargetModel, sandbox, streams, account=None):
    """Every live object at its newest version, nothing else. `account=None` is a run over the
    key's own account alone: every row counts, whatever `_account_id` it carries."""
    for stream in streams:
        expected = expected_rows(sandbox, stream, account)
        got = {r["id"]: r for r in model.rows(stream).values() if account is None or r.get("_account_id") == account}
        assert sorted(set(expected) - set(got)) == [], f"{stream}: missing rows"
        assert sorted(set(got) - set(expected)) == [], f"{stream}: rows of deleted objects"
        for key, record in expected.items():
            assert comparable(got[key]) == comparable(record), f"{stream} {key} is not at its newest version"
