"""The house rules the code keeps: every module of the package imports on its own, no two
modules import each other (directly or round a longer cycle), and no module uses another's
private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tap_stripe"
MODULES = sorted("tap_stripe." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
                 .rstrip(".") for p in PACKAGE.rglob("*.py"))
MODULES = [m.removesuffix(".__init__") for m in MODULES]


def _imports(module: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The package modules `module` imports, and the (module, name) pairs it imports by name."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    modules, names = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names if a.name.startswith("tap_stripe")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tap_stripe"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    modules.add(f"{node.module}.{alias.name}")
                else:
                    modules.add(node.module)
                    names.add((node.module, alias.name))
    return modules - {module}, names


GRAPH = {m: _imports(m)[0] for m in MODULES}


@pytest.mark.parametrize("module", ["tap_stripe.engine.plan", "tap_stripe.engine.fetch", "tap_stripe.engine.scheduler",
                                    "tap_stripe.engine.emission", "tap_stripe.engine.loop", "tap_stripe.engine.events",
                                    "tap_stripe.engine.children", "tap_stripe.engine.feeds", "tap_stripe.errors"])
def test_each_engine_module_imports_alone(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=PACKAGE.parent)


@pytest.mark.parametrize("module", ["tap_stripe.run", "tap_stripe.process", "tap_stripe.output.emitter",
                                    "tap_stripe.output.metrics", "tap_stripe.output.batch",
                                    "tap_stripe.reports.columns", "tap_stripe.reports.plan", "tap_stripe.reports.run",
                                    "tap_stripe.reports.parse", "tap_stripe.sensitive.classify",
                                    "tap_stripe.sensitive.protect", "tap_stripe.sensitive.scan"])
def test_each_output_report_and_sensitive_module_imports_alone(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=PACKAGE.parent)


def test_declaring_the_streams_imports_no_http_client():
    """The stream classes (report streams included: `tap_stripe.reports.columns`) are declared
    without the tap's HTTP client or the modules that call it: discovery needs none of them.
    (`requests` itself comes with the SDK: `singer_sdk` imports its REST streams.)"""
    http = ("tap_stripe.api.client", "tap_stripe.api.pagination", "tap_stripe.reports.task", "tap_stripe.reports.plan",
            "tap_stripe.reports.run")
    code = f"import sys, tap_stripe.streams; print(sorted(m for m in {http!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent,
                            capture_output=True, text=True).stdout.strip()
    assert loaded == "[]", f"importing tap_stripe.streams imports {loaded}"


def test_no_import_cycles():
    cycles = []

    def visit(module, path):
        for target in sorted(GRAPH.get(module, ())):
            if target == path[0]:
                cycles.append(" -> ".join([*path, target]))
            elif target not in path and target in GRAPH and len(path) < 12:
                visit(target, [*path, target])

    for module in MODULES:
        visit(module, [module])
    # A package's __init__ re-exporting its modules is not a cycle of theirs.
    cycles = [c for c in cycles if not any(p.endswith("streams") for p in c.split(" -> ")[1:-1])]
    assert not cycles, cycles[:5]


def test_no_module_imports_another_modules_private_names():
    private = [f"{m} imports {src}.{name}" for m in MODULES for src, name in _imports(m)[1]
               if name.startswith("_") and not name.startswith("__")]
    assert not private, private


# Private names of other packages the tap must use, each with why.
FOREIGN_PRIVATE = {
    "os._exit": "the documented way to leave a process without running cleanup (after a signal)",
    "_generate_schema_messages": "singer-sdk 0.54 builds a stream's SCHEMA (with maps and flattening) only there",
}


def test_no_module_uses_another_objects_private_attributes():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                text = ast.unparse(node)
                if not any(text.endswith(allowed) for allowed in FOREIGN_PRIVATE):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {text}")
    assert not found, found
