"""Every file path the docs and the README cite in backquotes names a file that exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
CITED = re.compile(r"`([A-Za-z0-9_./-]+\.(?:py|md|yaml|yml|toml))`")
# The agreed design and the code style live beside the repository, not in it; the docs cite them by name.
OUTSIDE = {"DESIGN.md", "STYLE.md"}
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def _repository_files() -> set[str]:
    files: set[str] = set()
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if path.is_file() and not SKIPPED_DIRS.intersection(relative.parts):
            files.add(relative.as_posix())
    return files


def _exists(cited: str, files: set[str]) -> bool:
    # A path may be cited from the root, from docs/, or by its tail inside a package (core/retention.py, leases.py).
    cited = cited.removeprefix("./")
    return cited in files or f"docs/{cited}" in files or any(f.endswith(f"/{cited}") for f in files)


def cited_paths(text: str) -> set[str]:
    return {match for match in CITED.findall(text) if match not in OUTSIDE}


def test_the_pattern_finds_cited_paths() -> None:
    text = "see `chalicelib/repository/reach.py` and `docs/api.md`, not `DESIGN.md` or `lifeboat --help`"
    assert cited_paths(text) == {"chalicelib/repository/reach.py", "docs/api.md"}


def test_a_missing_path_is_reported() -> None:
    files = {"chalicelib/backup/commit.py", "docs/api.md"}
    assert _exists("chalicelib/backup/commit.py", files)
    assert _exists("backup/commit.py", files)
    assert _exists("api.md", files)
    assert not _exists("chalicelib/backup/committer.py", files)
    assert not _exists("mit.py", files)


def test_every_cited_path_exists() -> None:
    files = _repository_files()
    missing = [
        f"{doc.relative_to(ROOT)}: {cited}"
        for doc in DOCS
        for cited in sorted(cited_paths(doc.read_text(encoding="utf-8")))
        if not _exists(cited, files)
    ]
    assert missing == []
