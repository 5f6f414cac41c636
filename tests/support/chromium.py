"""Debian's headless Chromium for page checks: the DOM after rendering, and a screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# What keeps Chromium from reaching for the network (this machine has none) and from touching a real profile.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    """The browser binary; a test that needs it fails (never skips) when it is missing: .ci/run installs it."""
    found = os.environ.get("LIFEBOAT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


def dump_dom(page: Path) -> str:
    return _run("--dump-dom", page.resolve().as_uri()).stdout


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 1600) -> Path:
    _run(f"--screenshot={out}", f"--window-size={width},{height}", page.resolve().as_uri())
    return out
