"""The reuse check's sample: per pack, the reused blobs of one window of frames, every frame as likely as another."""

from __future__ import annotations

import collections
import hashlib
import random
import threading
from typing import Any

from chalicelib.backup.verify import Checked, EarlyCheck, FrameSample, damaged, damaged_sample
from chalicelib.core.index_format import IndexEntry
from chalicelib.core.packs import PackedBlob
from chalicelib.repository.errors import BlobCorrupt
from chalicelib.repository.index_map import IndexMap

PACK_A, PACK_B = "a" * 64, "b" * 64
FRAME = 1000  # stored bytes of each frame in these packs
PER_FRAME = 4  # blobs per frame


def _blob(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _index(frames: int = 100, pack: str = PACK_A, first: int = 0) -> IndexMap:
    """``frames`` frames of ``PER_FRAME`` blobs each, blobs numbered from ``first`` in pack order."""
    index = IndexMap()
    rows = [
        PackedBlob(_blob(first + i), "data", (i // PER_FRAME) * FRAME, FRAME, 4000, (i % PER_FRAME) * 1000, 1000)
        for i in range(frames * PER_FRAME)
    ]
    index.add_pack(pack, rows)
    return index


def _frame(index: IndexMap, blob: str) -> int:
    return index[blob].frame_offset


def test_the_sample_is_every_offered_blob_of_the_frames_in_one_window():
    index = _index()
    sample = FrameSample(index, window_bytes=10 * FRAME, rng=random.Random(5))
    offered = [_blob(i) for i in range(0, 400, 3)]  # not every blob of the pack is reused
    for i, blob in enumerate(offered):
        sample.offer(bytes.fromhex(blob) if i % 2 else blob)  # as digests and as ids alike
    chosen = sample.blobs()
    frames = sorted({_frame(index, b) for b in chosen})
    assert chosen and set(chosen) <= set(offered)
    assert frames[-1] - frames[0] < 10 * FRAME, "one window of frames"
    # Every offered blob of those frames is in the sample, so a damaged one is found whenever its frame is read.
    assert {b for b in offered if frames[0] <= _frame(index, b) <= frames[-1]} == set(chosen)


def test_every_frame_of_a_pack_is_as_likely_to_be_read():
    index = _index(frames=40)
    reads: collections.Counter[int] = collections.Counter()
    rng = random.Random(11)
    runs = 3000
    for _ in range(runs):
        sample = FrameSample(index, window_bytes=5 * FRAME, rng=rng)
        for i in range(160):
            sample.offer(_blob(i))
        reads.update({_frame(index, b) for b in sample.blobs()})
    expected = runs * 5 / (40 + 5 - 1)  # a window starting up to one window short of the pack's start
    first, middle, last = reads[0], reads[20 * FRAME], reads[39 * FRAME]
    for count in (first, middle, last):
        assert abs(count - expected) < 0.15 * expected, (first, middle, last, expected)


def test_a_pack_whose_window_holds_no_reused_blob_still_has_one_read():
    index = _index(frames=100)
    for seed in range(30):
        sample = FrameSample(index, window_bytes=2 * FRAME, rng=random.Random(seed))
        sample.offer(_blob(7))  # one reused blob, in frame 1: the window mostly misses it
        sample.offer(_blob(399))
        chosen = sample.blobs()
        assert chosen and set(chosen) <= {_blob(7), _blob(399)}


def test_small_packs_and_unknown_blobs():
    index = _index(frames=3)
    index.add_pack(PACK_B, [PackedBlob(_blob(1000), "data", 0, FRAME, 4000, 0, 1000)])
    sample = FrameSample(index, window_bytes=10 * FRAME, rng=random.Random(1))
    for i in [*range(12), 1000, 5000]:  # 5000 is not in the repository: nothing to re-verify
        sample.offer(_blob(i))
    assert sample.blobs() == sorted(_blob(i) for i in [*range(12), 1000])


def test_an_index_that_knows_no_pack_sizes_has_every_offered_blob_read():
    index = {_blob(i): IndexEntry(PACK_A, "data", i * FRAME, FRAME, 4000, 0, 1000) for i in range(50)}
    sample = FrameSample(index, window_bytes=FRAME, rng=random.Random(1))
    for i in range(60):
        sample.offer(_blob(i))
    assert sample.blobs() == sorted(_blob(i) for i in range(50))


class Reader:
    def __init__(self, bad: set[str]) -> None:
        self.bad = bad
        self.read: list[str] = []

    def try_read_blobs(self, ids, *, where=None):
        for blob in ids:
            self.read.append(blob)
            yield blob, BlobCorrupt(f"blob {blob} is damaged", blob_id=blob) if blob in self.bad else b"{}"


def test_damaged_sample_reads_the_window_and_the_shared_trees_and_names_what_fails():
    index = _index(frames=100)
    tree = _blob(3)  # a tree the backup shares: always read, wherever it is
    reused = [_blob(i) for i in range(4, 400)]
    reader = Reader(bad=set(reused) | {tree})
    failed = damaged_sample(
        reader, index, reused, always=[tree, _blob(9999)], window_bytes=4 * FRAME, rng=random.Random(2)
    )
    frames = {_frame(index, b) for b in reader.read if b != tree}
    assert tree in reader.read and _blob(9999) not in reader.read  # an unindexed tree is the reach check's
    assert max(frames) - min(frames) < 4 * FRAME and len(reader.read) <= 4 * PER_FRAME + 1
    assert {b for b, _ in failed} == set(reader.read)
    assert all("damaged" in error for _, error in failed)


def test_offering_in_bulk_picks_what_offering_one_at_a_time_picks():
    index = _index(frames=100)
    index.add_pack(PACK_B, [PackedBlob(_blob(5000 + i), "data", i * FRAME, FRAME, 4000, 0, 1000) for i in range(50)])
    offered = [bytes.fromhex(_blob(i)) for i in [*range(0, 400, 2), *range(5000, 5050), 9999]]
    one, bulk = (FrameSample(index, window_bytes=8 * FRAME, rng=random.Random(seed)) for seed in (4, 4))
    for digest in offered:
        one.offer(digest)
    bulk.offer_all(offered)
    assert bulk.blobs() == one.blobs()
    assert {index[b].pack for b in bulk.blobs()} == {PACK_A, PACK_B}
    mixed = FrameSample(index, window_bytes=8 * FRAME, rng=random.Random(4))
    mixed.offer_all([_blob(1), *offered])  # an id among digests is looked up too
    assert set(mixed.blobs()) <= {_blob(1), *(d.hex() for d in offered)} and mixed.blobs()


def test_a_sample_given_another_samples_windows_takes_the_same_ones():
    index = _index(frames=100)
    index.add_pack(PACK_B, [PackedBlob(_blob(5000 + i), "data", i * FRAME, FRAME, 4000, 0, 1000) for i in range(50)])
    parent = [bytes.fromhex(_blob(i)) for i in range(400)]
    first = FrameSample(index, window_bytes=8 * FRAME, rng=random.Random(3))
    first.offer_all(parent)
    starts = first.starts()
    assert list(starts) == [PACK_A] and starts[PACK_A] is not None  # a window, not the whole pack
    # Another backup's sample (other blobs, another random generator) in the same windows: where both offered a
    # blob, the same blobs are kept; a pack the first never saw gets a window of its own.
    reused = [bytes.fromhex(_blob(i)) for i in [*range(0, 400, 2), 5001]]
    later = FrameSample(index, window_bytes=8 * FRAME, rng=random.Random(99), starts=lambda: starts)
    later.offer_all(reused)
    kept = set(later.blobs())
    in_a = {b for b in kept if index[b].pack == PACK_A}
    assert in_a == {b for b in first.blobs() if bytes.fromhex(b) in reused}
    assert later.starts()[PACK_A] == starts[PACK_A] and PACK_B in later.starts()
    assert _blob(5001) in kept  # PACK_B: its only offered blob


def test_blobs_checked_already_are_not_read_again_and_their_failures_count():
    index = _index(frames=10)
    sample = [_blob(i) for i in range(8)]
    checked = {_blob(0): None, _blob(1): f"blob {_blob(1)} is damaged", _blob(2): None}
    reader = Reader(bad={_blob(5)})
    failed = damaged(reader, index, sample, always=[_blob(30)], checked=checked)
    assert sorted(reader.read) == sorted([*sample[3:], _blob(30)])
    assert failed == sorted([(_blob(1), checked[_blob(1)]), (_blob(5), f"blob {_blob(5)} is damaged")])
    reader.read.clear()
    assert damaged(reader, index, sample[:3], checked=checked) == [(_blob(1), checked[_blob(1)])]
    assert reader.read == []  # nothing left to read


class Unreachable(Reader):
    def try_read_blobs(self, ids, *, where=None):
        raise ConnectionError("the store is unreachable")


def test_the_early_check_reads_the_parents_sample_in_the_background():
    index = _index(frames=100)
    parent = [bytes.fromhex(_blob(i)) for i in range(400)]
    reader = Reader(bad={_blob(i) for i in range(0, 400, 5)})
    early = EarlyCheck(reader, index, parent, window_bytes=8 * FRAME, rng=random.Random(7))
    results = early.results()
    same = FrameSample(index, window_bytes=8 * FRAME, rng=random.Random(7))
    same.offer_all(parent)
    assert early.starts() == same.starts()
    assert early.sampled() == frozenset(bytes.fromhex(b) for b in same.blobs())
    assert sorted(results) == same.blobs() == sorted(reader.read)
    assert {b for b, error in results.items() if error} == {b for b in results if b in reader.bad}
    # A store that cannot be read gives no results but what was verified already: the backup's own check then
    # reads its sample itself.
    tree = _blob(9000)
    unreachable = Unreachable(set())
    broken = EarlyCheck(unreachable, index, parent, verified=[tree], window_bytes=8 * FRAME, rng=random.Random(7))
    assert dict(broken.results()) == {tree: None} and broken.starts() == same.starts()

    def failing() -> Any:
        yield bytes.fromhex(_blob(0))
        raise RuntimeError("the parent's entries could not be read")

    # Offers that fail leave no sample: the backup's own takes windows of its own, and reads its blobs itself.
    unsampled = EarlyCheck(reader, index, failing(), window_bytes=8 * FRAME)
    assert unsampled.sampled() is None and unsampled.starts() == {} and unsampled.results() == {}


def test_checked_blobs_are_the_sample_read_and_what_was_verified_before():
    read, failed, tree = _blob(1), _blob(2), _blob(3)
    checked = Checked(frozenset({bytes.fromhex(read), bytes.fromhex(failed)}), {failed: "damaged"}, frozenset({tree}))
    assert checked[read] is None and checked[tree] is None and checked[failed] == "damaged"
    assert sorted(checked) == sorted([read, failed, tree]) and len(checked) == 3
    assert _blob(4) not in checked and "not hex" not in checked and checked.get(_blob(4), "unread") == "unread"


class Blocking(Reader):
    """A reader whose first read waits until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(set())
        self.calls = 0
        self.reading, self.release = threading.Event(), threading.Event()

    def try_read_blobs(self, ids, *, where=None):
        self.calls += 1
        self.reading.set()
        assert self.release.wait(timeout=10)
        yield from super().try_read_blobs(ids, where=where)


def test_an_early_check_stopped_makes_no_more_reads():
    index = IndexMap()
    packs = [f"{i:064x}" for i in range(12)]  # three rounds of reads, four packs each
    for n, pack in enumerate(packs):
        index.add_pack(
            pack, [PackedBlob(_blob(1000 * n + i), "data", i * FRAME, FRAME, 4000, 0, 1000) for i in range(3)]
        )
    reader = Blocking()
    parent = [bytes.fromhex(_blob(1000 * n + i)) for n in range(12) for i in range(3)]
    early = EarlyCheck(reader, index, parent, verified=[_blob(9)], window_bytes=8 * FRAME, rng=random.Random(1))
    assert reader.reading.wait(timeout=10)
    early.stop()  # the backup ended while the first four packs were being read
    reader.release.set()
    assert dict(early.results()) == {_blob(9): None}  # nothing it read counts any more: only what was verified
    assert reader.calls == 1 and len(reader.read) == 4 * 3
