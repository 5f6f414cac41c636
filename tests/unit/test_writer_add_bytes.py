"""RepositoryWriter.add_bytes: the writer names the bytes itself, so the per-object path hashes each blob once."""

from __future__ import annotations

import hashlib

import pytest

from chalicelib.repository import MemoryObjectStore, Repository, RepositoryReader, RepositoryWriter
from chalicelib.repository.errors import WriterStateError


def _repo() -> Repository:
    return Repository.open(MemoryObjectStore(), create=True)


def test_add_bytes_names_the_blob_by_its_sha256_and_packs_it_once():
    repo = _repo()
    writer = RepositoryWriter(repo)
    data = b'{"kind":"ConfigMap"}'
    bid, new = writer.add_bytes(data)
    assert bid == hashlib.sha256(data).hexdigest() and new
    assert writer.add_bytes(data) == (bid, False)
    assert writer.holds(bid)
    writer.finish()
    assert RepositoryReader(repo).read_blob(bid) == data


def test_add_bytes_skips_what_the_index_knows_and_refuses_after_finish():
    data = b"{}"
    known = {hashlib.sha256(data).hexdigest()}
    writer = RepositoryWriter(_repo(), known=known)
    assert writer.add_bytes(data) == (next(iter(known)), False)
    assert writer.stats["blobs_new"] == 0
    writer.finish()
    with pytest.raises(WriterStateError):
        writer.add_bytes(b"[]")
    with pytest.raises(ValueError, match="unknown blob type"):
        RepositoryWriter(_repo()).add_bytes(b"{}", type="nonsense")


def test_holds_answers_for_the_canonical_spelling_of_an_id_only():
    writer = RepositoryWriter(_repo())
    bid, _ = writer.add_bytes(b'{"a":1}')
    assert writer.holds(bid)
    assert not writer.holds(bid.upper())
    assert not writer.holds(bid[:-2])
    assert not writer.holds("not a blob id")
    assert writer.add(bid, b'{"a":1}') is False  # packed once, under the id add_bytes gave
    writer.finish()
    assert writer.stats["blobs_new"] == 1
