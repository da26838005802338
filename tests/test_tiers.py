"""Every test has exactly one tier (`unit`, `e2e`, `external`; pyproject.toml registers them,
tests/conftest.py assigns them): `make test-fast` runs `-m unit` and must leave out no test by
accident, nor run one twice under two tiers."""

import re
import subprocess
import sys

import pytest
from conftest import E2E_FIXTURES, ROOT, tier_of

NO_TIER_OR_TWO = "not (unit or e2e or external) or (unit and e2e) or (unit and external) or (e2e and external)"


@pytest.mark.e2e  # collects the whole tree in a pytest process: seconds, not a unit test's milliseconds
def test_every_collected_test_has_exactly_one_tier():
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", NO_TIER_OR_TWO], cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = proc.stdout.strip().splitlines()[-1]
    selected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert not selected, f"tests without exactly one tier: {selected[:10]}"
    deselected = re.search(r"(\d+) deselected", summary)
    assert deselected and int(deselected[1]) > 1000, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_the_tier_rules():
    assert tier_of("test_windows", {"tmp_path"}, []) == "unit"
    assert tier_of("test_targets", {"tmp_path"}, []) == "external"
    assert tier_of("test_simulation", set(), []) == "e2e"
    for fixture in E2E_FIXTURES:
        assert tier_of("test_engine", {"tmp_path", fixture}, []) == "e2e", fixture
    assert tier_of("test_engine", {"run_tap"}, ["unit"]) == "unit"  # a mark wins
    with pytest.raises(pytest.UsageError, match="several tiers"):
        tier_of("test_engine", set(), ["unit", "e2e"])
