"""The committed stream classes and schemas are exactly what the generator makes."""

import filecmp
import subprocess
import sys

from conftest import ROOT


def test_generated_files_match_the_generator(openapi_dir, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--openapi-dir", str(openapi_dir),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    committed = ROOT / "tap_stripe"
    assert (tmp_path / "streams" / "generated.py").read_text() == (committed / "streams" / "generated.py").read_text(), \
        "tap_stripe/streams/generated.py drifted from scripts/generate.py: run `make generate`"
    assert (tmp_path / "sensitive_fields.json").read_text() == (committed / "sensitive_fields.json").read_text(), \
        "tap_stripe/sensitive_fields.json drifted: run `make generate`"
    fresh = sorted(p.name for p in (tmp_path / "schemas").glob("*.json"))
    kept = sorted(p.name for p in (committed / "schemas").glob("*.json"))
    assert fresh == kept, "schema files differ from the generator's: run `make generate`"
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "schemas", committed / "schemas", fresh, shallow=False)
    assert not mismatch and not errors, f"schemas drifted: {mismatch[:5]}: run `make generate`"
