"""Every benchmark the README and ``make bench`` name starts as a script (``python bench/NAME.py``), not only as a
module: ``--help`` parses and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    p.name
    for p in (ROOT / "bench").glob("*.py")
    if "argparse" in p.read_text() and 'if __name__ == "__main__"' in p.read_text()
)


def test_the_benchmarks_are_found() -> None:
    assert {"backup.py", "cold.py", "restore.py", "scale.py", "thousand.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_starts_as_a_script(script: str) -> None:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
