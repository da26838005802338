"""The `--check`-or-write main shared by the scripts that keep a generated block in a file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def refresh(path: Path, render: Callable[[str], str], script: str) -> int:
    """Rewrite `path` with `render(text)`; with `--check`, only exit 1 when it would change."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {path.name} is out of date")
    args = parser.parse_args()
    current = path.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{path.name} is out of date: run `python {script}`", file=sys.stderr)
            return 1
        return 0
    path.write_text(fresh)
    return 0
