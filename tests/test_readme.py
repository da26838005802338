"""The README's generated tables match the tap."""

import subprocess
import sys

from conftest import ROOT


def test_readme_tables_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_quickstart_has_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
