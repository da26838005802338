"""The package as published: `python -m build` makes an sdist and a wheel that `twine check`
passes, with the metadata pyproject.toml declares (SPDX license and its file, the version from
tap_stripe/__init__.py), without setuptools deprecation warnings; the wheel alone runs the tap
(schemas included) and the sandbox.

`external` tier (tests/conftest.py): the build runs in an isolated environment that pip fills
with setuptools from the package index."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

import tap_stripe


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout + proc.stderr


def test_build_gives_an_sdist_and_a_wheel_twine_accepts(dist):
    out, log = dist
    version = tap_stripe.__version__
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"tap_stripe-{version}-py3-none-any.whl", f"tap_stripe-{version}.tar.gz"]
    assert "deprecat" not in log.lower() and "SetuptoolsWarning" not in log, log[-3000:]
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, out.iterdir())],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.count("PASSED") == 2, proc.stdout + proc.stderr


def test_the_wheel_declares_what_pyproject_says(dist):
    out, _ = dist
    with zipfile.ZipFile(next(out.glob("*.whl"))) as wheel:
        files = set(wheel.namelist())
        info = f"tap_stripe-{tap_stripe.__version__}.dist-info"
        meta = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
        assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert meta["Version"] == tap_stripe.__version__
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    classifiers = set(meta.get_all("Classifier"))
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression replaces them
    assert {f"Programming Language :: Python :: 3.{n}" for n in (10, 11, 12, 13)} <= classifiers
    assert "Topic :: Database" in classifiers and "Typing :: Typed" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Repository", "Issues", "Changelog"}
    assert {"tap_stripe/py.typed", "tap_stripe/schemas/charges.json", "tap_stripe/sensitive_fields.json",
            "stripe_sandbox/__main__.py", "stripe_sandbox/resources.py"} <= files
    assert not [f for f in files if f.startswith(("tests/", "scripts/", "data/", "benchmarks/"))]


def test_the_wheel_alone_runs_the_tap_and_the_sandbox(dist, tmp_path):
    """Unpacked on its own (ahead of the checkout on the path), the wheel's tap reports its
    version and discovers every stream from its packaged schemas; its sandbox imports."""
    out, _ = dist
    site = tmp_path / "site"
    with zipfile.ZipFile(next(out.glob("*.whl"))) as wheel:
        wheel.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    about = subprocess.run([sys.executable, "-m", "tap_stripe", "--about", "--format", "json"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert about.returncode == 0, about.stderr[-2000:]
    assert json.loads(about.stdout)["version"] == tap_stripe.__version__
    (tmp_path / "config.json").write_text(json.dumps({"api_key": "sk_test_x", "api_url": "http://127.0.0.1:9"}))
    code = ("import json, sys, tap_stripe, stripe_sandbox; "
            "print(json.dumps([tap_stripe.__file__, stripe_sandbox.__file__]))")
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert all(Path(f).is_relative_to(site) for f in json.loads(where.stdout)), where.stdout + where.stderr
    discover = subprocess.run([sys.executable, "-m", "tap_stripe", "--config", "config.json", "--discover"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert discover.returncode == 0, discover.stderr[-2000:]
    assert len(json.loads(discover.stdout)["streams"]) >= 117
