"""Every stream's generated objects validate against tap_stripe/schemas/<name>.json after the
tap's conversion (unix ints -> RFC 3339 for date-time properties, tap-added fields)."""
import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest

from stripe_sandbox import Store
from stripe_sandbox.fake import PH, conforms

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


@pytest.mark.skipif(not SCHEMAS.exists(), reason="tap schemas not generated yet")
def test_every_stream_validates_against_schema():
    s = Store(seed=11, scale=0.1, now=1767225600, accounts=2)
    checked = 0
    streams = 0
    bad = []
    for st in s.streams.values():
        p = SCHEMAS / f"{st.name}.json"
        if not p.exists() or st.spec.kind != "list":
            continue
        schema = json.loads(p.read_text())
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
