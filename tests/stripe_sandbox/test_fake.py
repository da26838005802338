"""Every stream's generated objects validate against tap_stripe/schemas/<name>.json after the
tap's conversion (unix ints -> RFC 3339 for date-time properties, tap-added fields)."""
import datetime as dt
import json
from pathlib import Path

import jsonschema

from stripe_sandbox import Store
from stripe_sandbox.fake import PH, conforms
from tap_stripe.streams import STREAMS as TABLE_STREAMS

SCHEMAS = Path(__file__).resolve().parents[2] / "tap_stripe" / "schemas"


def to_tap(value, schema, root=True):
    """The tap's conversion, as a small helper: date-time ints -> RFC 3339, recursively."""
    if value is None or not isinstance(schema, dict):
        return value
    if "anyOf" in schema:
        for opt in schema["anyOf"]:
            t = opt.get("type")
            ts = [t] if isinstance(t, str) else (t or [])
            if isinstance(value, dict) and "object" in ts:
                return to_tap(value, opt, False)
        return value
    if schema.get("format") == "date-time" and isinstance(value, int) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        return {k: to_tap(v, props.get(k, addl if isinstance(addl, dict) else {}), False) for k, v in value.items()}
    if isinstance(value, list):
        return [to_tap(v, schema.get("items") or {}, False) for v in value]
    return value


def test_unix_times_are_ints_on_the_wire():
    s = Store(seed=1, scale=0.05, now=1767225600)
    ch = s.truth("charges")[0]
    assert isinstance(ch["created"], int)


def test_conforms_rejects_wrong_types():
    assert not conforms("x", {"type": ["integer", "null"]})
    assert conforms(PH("ts", 0), {"type": "string", "format": "date-time"})


def test_every_stream_validates_against_schema():
    s = Store(seed=11, scale=0.1, now=1767225600, accounts=2)
    checked = 0
    streams = 0
    validated = set()
    bad = []
    for st in s.streams.values():
        if st.spec.kind != "list":
            continue
        p = SCHEMAS / f"{st.name}.json"
        assert p.exists(), f"{st.name}: no committed schema at {p}"
        schema = json.loads(p.read_text())
        validated.add(st.name)
        v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
        objs = s.truth(st.name)[:40]
        assert objs, f"{st.name} has no data"
        streams += 1
        for o in objs:
            assert not (set(o) & {"_account_id", "_updated_at", "_sdc_deleted_at"}), st.name
            rec = to_tap(o, schema)
            rec.update({"_account_id": s.account_id(0), "_updated_at": "2026-01-01T00:00:00Z"})
            errs = list(v.iter_errors(rec))
            if errs:
                bad.append((st.name, errs[0].message[:200], list(errs[0].path)))
                break
            checked += 1
    assert not bad, bad
    assert streams >= 8 and checked >= 2 * streams
    # Every list stream of the tap's table, each with its committed schema (the singletons,
    # balance and its views, are not lists).
    singletons = {spec.name for spec in TABLE_STREAMS if spec.kind != "list"}
    assert singletons == {"balance", "balance_available", "balance_pending"}
    assert validated == {spec.name for spec in TABLE_STREAMS if spec.kind == "list"}
    assert validated == {p.stem for p in SCHEMAS.glob("*.json")} - singletons
    assert streams == len(validated)
