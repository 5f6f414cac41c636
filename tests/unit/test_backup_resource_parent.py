"""The parent of a cluster's next backup, and the guess at it that the state index allows before it is confirmed."""

from __future__ import annotations

from typing import Any

from chalicelib.backup.etcd_only import resource_parent
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.core.models import BackupRecord, BackupState


def _record(backup_id: str, *, etcd: bool = False, parent: str | None = None) -> BackupRecord:
    extra = {"kind": "etcd"} if etcd else {}
    return BackupRecord("prod", backup_id, BackupState.COMPLETED, f"job-{backup_id}", parent=parent, extra=extra)


class Catalog:
    """The newest record as the index has it (``indexed``) and as the consistent read answers (``latest``)."""

    def __init__(self, indexed: BackupRecord | None, latest: BackupRecord | None, *records: BackupRecord) -> None:
        self._indexed, self._latest = indexed, latest
        self._records = {r.backup_id: r for r in records}

    def latest(self, cluster: str, *, indexed: Any = None) -> BackupRecord | None:
        if indexed is not None and self._indexed is not None:
            indexed(self._indexed)
        return self._latest

    def get(self, cluster: str, backup_id: str) -> BackupRecord:
        if backup_id not in self._records:
            raise RecordNotFound(backup_id)
        return self._records[backup_id]


def test_the_guess_is_the_indexed_resource_backup() -> None:
    guesses: list[str | None] = []
    newest = _record("b2")
    assert resource_parent(Catalog(newest, newest), "prod", guess=guesses.append) == newest
    assert guesses == ["b2"]


def test_an_indexed_etcd_only_backup_guesses_the_parent_it_recorded() -> None:
    guesses: list[str | None] = []
    parent = _record("b1")
    etcd = _record("b2", etcd=True, parent="b1")
    assert resource_parent(Catalog(etcd, etcd, parent), "prod", guess=guesses.append) == parent
    assert guesses == ["b1"]


def test_nothing_indexed_makes_no_guess() -> None:
    guesses: list[str | None] = []
    assert resource_parent(Catalog(None, None), "prod", guess=guesses.append) is None
    assert guesses == []


def test_without_a_guesser_the_parent_is_the_same() -> None:
    newest = _record("b2")
    assert resource_parent(Catalog(_record("b1"), newest), "prod") == newest
