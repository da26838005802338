"""Real targets: a full sync from the sandbox into PostgreSQL (MeltanoLabs' target-postgres) and DuckDB
(target-duckdb), then SQL checks: row counts against the sandbox's truth, column types, values, and a second
incremental run that updates rows in place. What each target does with each schema construct: docs/targets.md.

The targets pin other singer-sdk versions than the tap, so each lives in its own venv under a cache folder
(TAP_STRIPE_TARGETS_CACHE, default ~/.cache/tap-stripe-test-targets), made once and reused. SQL runs through the
target venv's own driver (psycopg / duckdb), so the tap's venv needs neither.

PostgreSQL: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (tap_stripe), PGPASSWORD (tap_stripe), PGDATABASE
(tap_stripe). Without a server the Postgres tests skip, except under CI=true where they fail: .ci/run installs
and starts one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from conftest import catalog_for, tap_config

from tap_stripe.tap import SPECS

CACHE = Path(os.environ.get("TAP_STRIPE_TARGETS_CACHE", Path.home() / ".cache" / "tap-stripe-test-targets"))
# Keep in step with the loaders' pip_url in meltano.yml (tests/test_meltano.py checks it).
TARGETS = {
    "target-postgres": ["meltanolabs-target-postgres==0.8.1"],
    # duckdb 1.1+ makes target-duckdb 0.8.0 drop the first row of a batch (it sniffs a CSV header): docs/targets.md
    "target-duckdb": ["target-duckdb==0.8.0", "duckdb==1.0.0"],
}
DAY = 86400
# Check these stream by stream after the incremental run.
MUTATED = ["charges", "customers", "products", "invoices"]
# target-postgres 0.8.1 cannot process ACTIVATE_VERSION for a table with a column named `version` (SQLAlchemy
# CompileError, docs/targets.md): rename it with a stream map until the target is fixed.
# Every stream a default catalog selects (report streams are opt-in: a report run takes minutes).
ALL_BUT_REPORTS = [name for name, spec in SPECS.items() if spec.kind != "report"]
# target-postgres cannot activate a table version of a table with a `version` column (docs/targets.md):
# the full-table streams that have one rename it.
POSTGRES_STREAM_MAPS = {"report_types": {"report_version": "version", "version": "__NULL__"},
                        "invoice_rendering_templates": {"template_version": "version", "version": "__NULL__"}}

PG = {"host": os.environ.get("PGHOST", "127.0.0.1"), "port": int(os.environ.get("PGPORT", "5432")),
      "user": os.environ.get("PGUSER", "tap_stripe"), "password": os.environ.get("PGPASSWORD", "tap_stripe"),
      "database": os.environ.get("PGDATABASE", "tap_stripe")}


# ---------------------------------------------------------------------------------------------- target venvs
def target_venv(name: str, requirements: list[str]) -> Path:
    """A venv with `requirements` under CACHE/name, made once (under a lock: pytest-xdist workers share it)."""
    venv = CACHE / name
    stamp = venv / ".requirements.json"
    want = json.dumps(requirements)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == want and (venv / "bin" / "python").exists():
            return venv
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        proc = subprocess.run([*pip, *requirements], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"pip install {requirements} failed:\n{proc.stderr[-3000:]}"
        stamp.write_text(want)
    return venv


def venv_sql(venv: Path, driver: str, connect: dict, queries: list[str]) -> list[list[list]]:
    """Run `queries` with the target venv's own driver; each result as a list of rows."""
    script = textwrap.dedent("""
        import datetime, decimal, json, sys
        driver, connect, queries = json.load(sys.stdin)
        if driver == "duckdb":
            import duckdb
            con = duckdb.connect(connect["path"], read_only=True)
            run = lambda q: con.execute(q).fetchall()
        else:
            import psycopg
            connect = {("dbname" if k == "database" else k): v for k, v in connect.items()}
            con = psycopg.connect(**connect, autocommit=True)
            def run(q):
                cur = con.execute(q)
                return cur.fetchall() if cur.description else []
        def plain(v):
            if isinstance(v, (datetime.datetime, datetime.date)):
                return v.isoformat()
            if isinstance(v, decimal.Decimal):
                return int(v) if v == int(v) else float(v)
            return v
        print(json.dumps([[[plain(v) for v in row] for row in run(q)] for q in queries]))
    """)
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", script], input=json.dumps([driver, connect, queries]),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


# ------------------------------------------------------------------------------------------------ pipeline
class Pipeline:
    """`tap-stripe --config --catalog [--state] | <target> --config`, state carried from run to run."""

    def __init__(self, tmp_path: Path, venv: Path, executable: str, target_config: dict, tap_settings: dict,
                 catalog: dict):
        self.tmp, self.runs, self.state = tmp_path, 0, None
        self.target = str(venv / "bin" / executable)
        (tmp_path / "target.json").write_text(json.dumps(target_config))
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        self.tap_settings = tap_settings

    def run(self, sandbox, timeout: float = 300) -> float:
        self.runs += 1
        n, tmp = self.runs, self.tmp
        (tmp / "tap.json").write_text(json.dumps(tap_config(sandbox, **self.tap_settings)))
        tap_cmd = [sys.executable, "-m", "tap_stripe", "--config", str(tmp / "tap.json"),
                   "--catalog", str(tmp / "catalog.json")]
        if self.state is not None:
            (tmp / "state.json").write_text(json.dumps(self.state))
            tap_cmd += ["--state", str(tmp / "state.json")]
        started = time.monotonic()
        with open(tmp / f"tap{n}.err", "w") as tap_err, open(tmp / f"target{n}.err", "w") as target_err, \
                open(tmp / f"target{n}.out", "w") as target_out:
            tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=tap_err, cwd=tmp)
            target = subprocess.Popen([self.target, "--config", str(tmp / "target.json")], stdin=tap.stdout,
                                      stdout=target_out, stderr=target_err, cwd=tmp)
            tap.stdout.close()
            try:
                target_rc, tap_rc = target.wait(timeout), tap.wait(timeout)
            finally:
                for proc in (tap, target):
                    if proc.poll() is None:
                        proc.kill()
        elapsed = time.monotonic() - started
        assert tap_rc == 0, f"tap failed:\n{(tmp / f'tap{n}.err').read_text()[-3000:]}"
        assert target_rc == 0, f"{self.target} failed:\n{(tmp / f'target{n}.err').read_text()[-5000:]}"
        states = [line for line in (tmp / f"target{n}.out").read_text().splitlines() if line.strip()]
        assert states, "the target emitted no STATE"
        self.state = json.loads(states[-1])
        return elapsed


def mutate(sandbox, rng: random.Random) -> dict:
    """Creates, updates and deletes through the sandbox's control API, at its current time."""
    charges = sandbox.truth("charges")
    updated = [c["id"] for c in rng.sample(charges, 3)]
    for cid in updated:
        sandbox.update("charges", cid, {"metadata": {"audit": "changed"}, "amount": 4242})
    created = [sandbox.create("charges", {"amount": 1234})["id"] for _ in range(4)]
    customers = sandbox.truth("customers")
    sandbox.update("customers", customers[0]["id"], {"email": "changed@example.com"})
    sandbox.delete("customers", customers[1]["id"])
    products = sandbox.truth("products")
    sandbox.update("products", products[0]["id"], {"name": "Renamed"})
    sandbox.delete("products", products[1]["id"])
    invoices = sandbox.truth("invoices")
    sandbox.update("invoices", invoices[0]["id"], {"metadata": {"k": "v"}})
    return {"charges_updated": updated, "charges_created": created, "customer_updated": customers[0]["id"],
            "customer_deleted": customers[1]["id"], "product_renamed": products[0]["id"],
            "product_deleted": products[1]["id"], "invoice_updated": invoices[0]["id"]}


# ------------------------------------------------------------------------------------------- the checks
class Warehouse:
    """SQL against one target's tables, in that target's dialect."""

    def __init__(self, venv: Path, driver: str, connect: dict, schema: str):
        self.venv, self.driver, self.connect, self.schema = venv, driver, connect, schema

    def q(self, *queries: str) -> list[list[list]]:
        return venv_sql(self.venv, self.driver, self.connect, list(queries))

    def table(self, stream: str) -> str:
        return f'"{self.schema}"."{stream}"'

    def column_types(self, stream: str) -> dict[str, str]:
        [rows] = self.q(f"select column_name, data_type from information_schema.columns "
                        f"where table_schema = '{self.schema}' and table_name = '{stream}'")
        return {name: kind.lower() for name, kind in rows}

    def tables(self) -> set[str]:
        [rows] = self.q(f"select table_name from information_schema.tables where table_schema = '{self.schema}'")
        return {r[0] for r in rows}

    def live_counts(self, streams: list[str]) -> dict[str, int]:
        """Rows not soft-deleted, per table."""
        queries = [f"select count(*) from {self.table(s)} where _sdc_deleted_at is null" for s in streams]
        return {s: r[0][0] for s, r in zip(streams, self.q(*queries))}

    def duplicate_keys(self, keys: dict[str, list[str]]) -> dict[str, list]:
        """Key values held by more than one row, per table (`keys`: stream -> key columns)."""
        queries = []
        for stream, columns in keys.items():
            cols = ", ".join(f'"{c}"' for c in columns)
            queries.append(f"select {cols}, count(*) from {self.table(stream)} group by {cols} having count(*) > 1")
        return {s: r for s, r in zip(keys, self.q(*queries)) if r}

    def epoch(self, column: str) -> str:
        return f"extract(epoch from {column})" if self.driver == "postgres" else f"epoch({column})"

    def json_text(self, column: str, key: str) -> str:
        return f"{column} ->> '{key}'"


def selected_streams(catalog: dict) -> dict[str, list[str]]:
    """The catalog's selected streams and their key properties ([] for `balance`)."""
    return {e["tap_stream_id"]: e.get("key_properties") or [] for e in catalog["streams"]
            if any(m["breadcrumb"] == [] and m["metadata"].get("selected") for m in e["metadata"])}


def check_full_sync(wh: Warehouse, sandbox, streams: list[str]):
    """Every selected stream's table holds exactly the sandbox's truth: one row per object (the
    `balance` singleton, one per run; its `available`/`pending` amounts, one per currency)."""
    assert set(streams) <= wh.tables(), f"tables missing: {sorted(set(streams) - wh.tables())}"
    counts = wh.live_counts(streams)
    truth = {s: len(sandbox.truth(s)) for s in streams}
    assert counts == truth, {s: (counts[s], truth[s]) for s in streams if counts[s] != truth[s]}
    assert sum(truth.values()) > 500
    for stream in ("balance_available", "balance_pending"):
        [rows] = wh.q(f"select currency, amount from {wh.table(stream)}")
        assert sorted(map(tuple, rows)) == sorted((r["currency"], r["amount"]) for r in sandbox.truth(stream)), stream

    types = wh.column_types("charges")
    assert types["created"].startswith("timestamp") and types["_updated_at"].startswith("timestamp"), types
    assert types["_sdc_deleted_at"].startswith("timestamp"), types
    # Postgres: bigint; target-duckdb: hugeint for an integer without `maximum` (docs/targets.md).
    assert types["amount"] in ("bigint", "hugeint"), types
    assert types["metadata"] in ("jsonb", "json"), types
    assert types["billing_details"] in ("jsonb", "json"), types
    assert types["deleted"] == "boolean", types
    assert wh.column_types("invoices")["lines"] in ("jsonb", "json")

    # Values: epoch seconds, integer amounts and metadata keys round-trip exactly.
    truth_charges = {c["id"]: c for c in sandbox.truth("charges")}
    [rows] = wh.q(f"select id, amount, {wh.epoch('created')}, metadata from {wh.table('charges')}")
    assert len(rows) == len(truth_charges)
    for cid, amount, created, metadata in rows:
        t = truth_charges[cid]
        assert amount == t["amount"] and isinstance(amount, int), (cid, amount, t["amount"])
        assert int(created) == t["created"], (cid, created, t["created"])
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        assert metadata == (t.get("metadata") or {}), (cid, metadata, t.get("metadata"))


def check_incremental(wh: Warehouse, sandbox, keys: dict[str, list[str]], changed: dict):
    dupes = wh.duplicate_keys(keys)
    assert not dupes, f"duplicate keys after the incremental run: {dupes}"
    counts = wh.live_counts(MUTATED)
    # The deleted customer is gone in both targets, although customers are a full-resync stream
    # and target-duckdb ignores ACTIVATE_VERSION: the re-read also sends its `customer.deleted`.
    truth = {s: len(sandbox.truth(s)) for s in MUTATED}
    assert counts == truth
    ids = ", ".join(f"'{i}'" for i in changed["charges_updated"] + changed["charges_created"])
    [charges, [[customer_email]], products, [[customer_deleted_at]]] = wh.q(
        f"select id, amount, {wh.json_text('metadata', 'audit')} from {wh.table('charges')} where id in ({ids})",
        f"select email from {wh.table('customers')} where id = '{changed['customer_updated']}'",
        f"select id, name, _sdc_deleted_at from {wh.table('products')} "
        f"where id in ('{changed['product_renamed']}', '{changed['product_deleted']}') order by id",
        f"select _sdc_deleted_at from {wh.table('customers')} where id = '{changed['customer_deleted']}'",
    )
    by_id = {r[0]: r for r in charges}
    assert set(by_id) == set(changed["charges_updated"]) | set(changed["charges_created"])
    for cid in changed["charges_updated"]:
        assert by_id[cid][1:] == [4242, "changed"], by_id[cid]
    for cid in changed["charges_created"]:
        assert by_id[cid][1] == 1234, by_id[cid]
    assert customer_email == "changed@example.com"
    products = {r[0]: r for r in products}
    assert products[changed["product_renamed"]][1] == "Renamed" and products[changed["product_renamed"]][2] is None
    assert products[changed["product_deleted"]][2] is not None, "the deleted product is not soft-deleted"
    assert customer_deleted_at is not None, "the deleted customer is not soft-deleted"


def sync_twice(tmp_path, sandbox, venv, executable, target_config, wh, tap_settings, catalog):
    streams = selected_streams(catalog)
    pipeline = Pipeline(tmp_path, venv, executable, target_config, tap_settings, catalog)
    first = pipeline.run(sandbox)
    check_full_sync(wh, sandbox, list(streams))

    sandbox.advance(DAY)
    changed = mutate(sandbox, random.Random(7))
    sandbox.advance(60)
    second = pipeline.run(sandbox)
    check_incremental(wh, sandbox, {s: k for s, k in streams.items() if k}, changed)
    print(f"{executable}: full sync {first:.1f}s, incremental {second:.1f}s")


# ---------------------------------------------------------------------------------------------- postgres
def postgres_reachable() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((PG["host"], PG["port"]), timeout=2):
        return True
    return False


@pytest.fixture
def postgres(request):
    """(venv, connect, schema): a fresh schema in the PostgreSQL server, dropped afterwards."""
    if not postgres_reachable():
        message = (f"no PostgreSQL server at {PG['host']}:{PG['port']} (set PGHOST/PGPORT/PGUSER/PGPASSWORD/"
                   f"PGDATABASE; .ci/run installs Debian's postgresql and starts it)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " — CI must run this test")
        pytest.skip(message)
    venv = target_venv("target-postgres", TARGETS["target-postgres"])
    schema = f"tap_stripe_test_{uuid.uuid4().hex[:8]}"
    yield venv, dict(PG), schema
    venv_sql(venv, "postgres", PG, [f'drop schema if exists "{schema}" cascade'])


def postgres_config(connect: dict, schema: str) -> dict:
    return {**connect, "default_target_schema": schema, "activate_version": True, "hard_delete": False,
            "add_record_metadata": True}


def test_postgres_full_then_incremental(tmp_path, sandbox, postgres):
    venv, connect, schema = postgres
    catalog = catalog_for(ALL_BUT_REPORTS)  # every stream but the opt-in report streams
    wh = Warehouse(venv, "postgres", connect, schema)
    sync_twice(tmp_path, sandbox, venv, "target-postgres", postgres_config(connect, schema), wh,
               {"lookback_seconds": 60, "stream_maps": POSTGRES_STREAM_MAPS}, catalog)
    report_types = wh.column_types("report_types")
    assert "report_version" in report_types and "version" not in report_types, report_types


@pytest.mark.xfail(strict=True, reason="target-postgres 0.8.1: ACTIVATE_VERSION on a table with a `version` column "
                                       "raises SQLAlchemy CompileError (docs/targets.md)")
def test_postgres_report_types_without_stream_map(tmp_path, sandbox, postgres):
    venv, connect, schema = postgres
    pipeline = Pipeline(tmp_path, venv, "target-postgres", postgres_config(connect, schema), {},
                        catalog_for(["report_types"]))
    pipeline.run(sandbox)


def test_postgres_expanded_field(tmp_path, sandbox, postgres):
    """Expanded fields are typed as objects in the run's SCHEMA (the catalog is aligned with
    `expand`), so target-postgres loads them as JSON instead of failing on a TEXT column."""
    venv, connect, schema = postgres
    pipeline = Pipeline(tmp_path, venv, "target-postgres", postgres_config(connect, schema),
                        {"expand": {"charges": ["customer"]}}, catalog_for(["charges"]))
    pipeline.run(sandbox)
    wh = Warehouse(venv, "postgres", connect, schema)
    assert wh.column_types("charges")["customer"] in ("jsonb", "json")
    [rows] = wh.q(f"select id, customer ->> 'id' from {schema}.charges where customer ->> 'id' is not null")
    truth = {c["id"]: c["customer"] for c in sandbox.truth("charges") if c.get("customer")}
    assert rows and {cid: cus for cid, cus in rows} == truth


# ------------------------------------------------------------------------------------------------ duckdb
@pytest.fixture
def duckdb_target(tmp_path):
    return target_venv("target-duckdb", TARGETS["target-duckdb"]), str(tmp_path / "warehouse.duckdb")


def duckdb_config(path: str) -> dict:
    # The balance stream has no key properties; target-duckdb refuses those unless told otherwise.
    return {"path": path, "default_target_schema": "stripe", "primary_key_required": False}


def test_duckdb_full_then_incremental(tmp_path, sandbox, duckdb_target):
    venv, path = duckdb_target
    catalog = catalog_for(ALL_BUT_REPORTS)
    wh = Warehouse(venv, "duckdb", {"path": path}, "stripe")
    sync_twice(tmp_path, sandbox, venv, "target-duckdb", duckdb_config(path), wh, {"lookback_seconds": 60},
               catalog)


def test_duckdb_expanded_field_lands_as_json_text(tmp_path, sandbox, duckdb_target):
    venv, path = duckdb_target
    Pipeline(tmp_path, venv, "target-duckdb", duckdb_config(path), {"expand": {"charges": ["customer"]}},
             catalog_for(["charges"])).run(sandbox)
    wh = Warehouse(venv, "duckdb", {"path": path}, "stripe")
    [rows] = wh.q("select id, customer ->> 'id' from stripe.charges where customer is not null")
    truth = {c["id"]: c["customer"] for c in sandbox.truth("charges") if c.get("customer")}
    assert rows and {cid: cus for cid, cus in rows} == truth


def test_duckdb_keeps_the_first_row_of_a_batch(tmp_path, duckdb_target):
    """The duckdb pin: with duckdb 1.1+, target-duckdb's CSV COPY takes an all-text first row for a header."""
    venv, path = duckdb_target
    messages = [{"type": "SCHEMA", "stream": "names", "key_properties": ["id"],
                 "schema": {"type": "object", "properties": {"id": {"type": ["string"]},
                                                             "name": {"type": ["string", "null"]}}}}]
    messages += [{"type": "RECORD", "stream": "names", "record": {"id": f"id_{i}", "name": f"name {i}"}}
                 for i in range(3)]
    (tmp_path / "target.json").write_text(json.dumps(duckdb_config(path)))
    proc = subprocess.run([str(venv / "bin" / "target-duckdb"), "--config", str(tmp_path / "target.json")],
                          input="".join(json.dumps(m) + "\n" for m in messages), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [rows] = venv_sql(venv, "duckdb", {"path": path}, ["select id from stripe.names order by id"])
    assert rows == [["id_0"], ["id_1"], ["id_2"]]
