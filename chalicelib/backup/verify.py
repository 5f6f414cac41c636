"""Re-verifying what a backup deduplicates against: the reused blobs of one window of frames per pack."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from chalicelib.core.ids import BlobId, PackId

# Reading every reused blob would cost what deduplication saves. Per pack, the backup re-reads the frames that start
# in one window of this many stored bytes, placed at random, and re-hashes every reused blob in them: one range GET
# per pack (~20 frames of 1 KiB objects), where 64 random blobs a pack touched a third to a half of its frames in up
# to ten GETs. Every frame is equally likely to be in the window: a damaged frame is found with probability about
# window / (pack size + window) per backup (1/9 for a full 4 MiB pack, where 64 random blobs found it a third of the
# time), and as every reused blob in the window is checked, a damaged blob is found as often as its frame (64 random
# blobs of a pack's ~10,000 found it 0.6 % of the time). The daily sampled ``repo check --read-data`` covers the
# rest.
WINDOW_BYTES = 512 << 10

_Location = Callable[[BlobId | bytes], tuple[PackId, int] | None]


def reused_blobs(entries: Mapping[str, Iterable[Any]], index: Mapping[BlobId, Any]) -> set[BlobId]:
    """Blobs the new backup's tree entries name that the repository already held before it ran."""
    return {e.blob for scope in entries.values() for e in scope if e.blob in index}


class FrameSample:
    """The blobs to re-verify, offered one at a time (as hex ids or 32-byte digests), in memory bounded by the
    windows: per pack, those ``index`` places in a frame starting inside the pack's window, or the first offered
    when none is. A pack no larger than the window, or whose size ``index`` does not know, is its own window."""

    def __init__(
        self,
        index: Mapping[BlobId, Any],
        *,
        window_bytes: int = WINDOW_BYTES,
        rng: random.Random | None = None,
        starts: Callable[[], Mapping[PackId, int | None]] | None = None,
    ) -> None:
        """``starts``: gives the windows to take in the packs it names (another sample's ``starts``), instead of new
        ones; called when the first blob is kept."""
        self._where = _locator(index)
        self._frames_of = getattr(index, "frames_of_digests", None)
        self._end = getattr(index, "pack_end", None)
        self._window = window_bytes
        self._rng = rng or random.Random()
        self._given_by = starts
        self._given: Mapping[PackId, int | None] | None = None if starts is not None else {}
        # pack -> (window start, or None: the whole pack; the kept blobs; the first blob offered)
        self._packs: dict[PackId, tuple[int | None, dict[BlobId | bytes, None], BlobId | bytes]] = {}

    def offer(self, blob: BlobId | bytes) -> None:
        where = self._where(blob)
        if where is not None:  # else not in the repository before this run: nothing to re-verify
            self._keep(blob, *where)

    def offer_all(self, blobs: Iterable[BlobId | bytes]) -> None:
        """``offer`` each of ``blobs``; an index that locates digests in bulk (``IndexMap``) is asked once."""
        if self._frames_of is None:
            for blob in blobs:
                self.offer(blob)
            return
        digests: list[bytes] = []
        for blob in blobs:
            if isinstance(blob, bytes):
                digests.append(blob)
            else:
                self.offer(blob)
        packs, window, keep = self._packs, self._window, self._keep
        for digest, pack, frame in self._frames_of(digests):
            state = packs.get(pack)
            if state is None:
                keep(digest, pack, frame)
                continue
            start = state[0]
            if start is None or start <= frame < start + window:
                state[1][digest] = None

    def _keep(self, blob: BlobId | bytes, pack: PackId, frame: int) -> None:
        state = self._packs.get(pack)
        if state is None:
            state = self._packs[pack] = (self._start(pack), {}, blob)
        start, kept, _ = state
        if start is None or start <= frame < start + self._window:
            kept[blob] = None

    def _start(self, pack: PackId) -> int | None:
        if self._given is None:
            self._given = self._given_by() if self._given_by is not None else {}
        if pack in self._given:
            return self._given[pack]
        end = self._end(pack) if self._end is not None else None
        if end is None or end <= self._window:
            return None
        # From one window short of the start: the first frames are as likely to be covered as the middle ones.
        return self._rng.randrange(1 - self._window, end)

    def blobs(self) -> list[BlobId]:
        return sorted({blob for blobs in self.blobs_by_pack() for blob in blobs})

    def blobs_by_pack(self) -> list[list[BlobId]]:
        """``blobs``, those of each pack apart (each sorted)."""
        return [
            sorted({BlobId(blob.hex()) if isinstance(blob, bytes) else blob for blob in kept or (first,)})
            for _, kept, first in self._packs.values()
        ]

    def starts(self) -> dict[PackId, int | None]:
        """The window taken in each pack offered a blob (None: the whole pack), for another sample to take too."""
        return {pack: state[0] for pack, state in self._packs.items()}


def _locator(index: Mapping[BlobId, Any]) -> _Location:
    """blob (id or digest) -> (its pack, its frame's offset) in ``index``: an ``IndexMap`` answers without decoding
    the whole location."""
    by_digest = getattr(index, "frame_of_digest", None)

    def by_entry(blob: BlobId | bytes) -> tuple[PackId, int] | None:
        entry = index.get(BlobId(blob.hex()) if isinstance(blob, bytes) else blob)
        return (entry.pack, entry.frame_offset) if entry is not None else None

    if by_digest is None:
        return by_entry

    def lookup(blob: BlobId | bytes) -> tuple[PackId, int] | None:
        if isinstance(blob, bytes):
            return by_digest(blob)  # type: ignore[no-any-return]
        return by_entry(blob)

    return lookup


def damaged_sample(
    reader: Any,
    index: Mapping[BlobId, Any],
    blobs: Iterable[BlobId],
    *,
    always: Iterable[BlobId] = (),
    window_bytes: int = WINDOW_BYTES,
    rng: random.Random | None = None,
) -> list[tuple[BlobId, str]]:
    """Read and re-hash the ``FrameSample`` of ``blobs`` and every blob of ``always`` (the few trees a backup shares
    with an earlier one); the (blob, error) of those that fail."""
    sample = FrameSample(index, window_bytes=window_bytes, rng=rng)
    sample.offer_all(blobs)
    return damaged(reader, index, sample.blobs(), always=always)


def damaged(
    reader: Any,
    index: Mapping[BlobId, Any],
    sample: Iterable[BlobId],
    *,
    always: Iterable[BlobId] = (),
    checked: Mapping[BlobId, str | None] | None = None,
) -> list[tuple[BlobId, str]]:
    """Read and re-hash ``sample`` (a ``FrameSample``'s blobs) and the blobs of ``always`` that ``index`` holds;
    the (blob, error) of those that fail. ``checked``: blobs read and re-hashed already in this run (an
    ``EarlyCheck``'s results: blob -> its error, None when it read), which are not read again."""
    wanted = sorted({b for b in always if b in index} | set(sample))
    if checked is None:
        checked = {}
    failed = [(b, error) for b in wanted if (error := checked.get(b)) is not None]
    failed.extend(_read_failures(reader, [b for b in wanted if b not in checked]).items())
    return sorted(failed)


def _read_failures(reader: Any, blobs: list[BlobId]) -> dict[BlobId, str]:
    """Read and re-hash ``blobs``: the error of each that fails."""
    from chalicelib.repository.errors import RepositoryError

    if not blobs:
        return {}
    where = "a blob this backup deduplicates against"
    return {b: str(r) for b, r in reader.try_read_blobs(blobs, where=where) if isinstance(r, RepositoryError)}


# Packs whose sample an early check reads in one ``try_read_blobs`` (its GETs run at once; what it plans for them,
# per blob, is held only for those packs).
EARLY_PACKS_AT_ONCE = 4


class EarlyCheck:
    """The sample of a parent's blobs, read and re-hashed in the background while the backup lists.

    An incremental backup reuses most of its parent's blobs. Once the parent's trees are loaded, every blob they
    name is offered to a ``FrameSample`` on a thread of its own, whose blobs are then read there, a few packs at a
    time. The backup's own sample, taken as its trees are written, takes the same windows (``starts``): a blob it
    reuses from the parent is in it exactly when it is in this one (``sampled``; a set intersection instead of
    offering it again), and was read already (``results``); only the rest are read before the commit. Each pack's
    window is still placed at random, so a damaged frame is found as often as before; a blob read early that the
    backup does not reuse after all is not in its sample, and not its concern, as before. ``verified``: blobs this
    run has read and hash-checked already (the parent's root and trees, as they were loaded), which count as read.
    """

    def __init__(
        self,
        reader: Any,
        index: Mapping[BlobId, Any],
        digests: Iterable[bytes],
        *,
        verified: Iterable[BlobId] = (),
        window_bytes: int = WINDOW_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        from chalicelib.backup.head_start import in_background

        self._verified = frozenset(verified)
        self._starts: dict[PackId, int | None] = {}
        self._sampled: frozenset[bytes] | None = None
        self._offered = threading.Event()
        self._stopped = threading.Event()
        self._future = in_background(
            lambda: self._run(reader, index, digests, window_bytes, rng), "lifeboat-check-parent"
        )

    def _run(
        self,
        reader: Any,
        index: Mapping[BlobId, Any],
        digests: Iterable[bytes],
        window_bytes: int,
        rng: random.Random | None,
    ) -> dict[BlobId, str]:
        try:
            sample = FrameSample(index, window_bytes=window_bytes, rng=rng)
            sample.offer_all(digests)
            by_pack = sample.blobs_by_pack()
            sampled = frozenset(bytes.fromhex(b) for blobs in by_pack for b in blobs)
            self._starts, self._sampled = sample.starts(), sampled
            del sample
        finally:
            self._offered.set()
        failures: dict[BlobId, str] = {}
        for at in range(0, len(by_pack), EARLY_PACKS_AT_ONCE):
            if self._stopped.is_set():
                raise EarlyCheckStopped("the backup ended before its early check did")
            failures.update(
                _read_failures(reader, [b for blobs in by_pack[at : at + EARLY_PACKS_AT_ONCE] for b in blobs])
            )
        return failures

    def stop(self) -> None:
        """The backup has ended (committed, failed, or a duplicate): reads not yet begun are not made."""
        self._stopped.set()

    def starts(self) -> dict[PackId, int | None]:
        """The window of each pack the parent's blobs are in (``FrameSample.starts``), once they are offered; empty
        when that failed."""
        self._offered.wait()
        return self._starts

    def sampled(self) -> frozenset[bytes] | None:
        """The digests of the blobs of the sample, once they are offered; None when that failed (then the backup's
        sample takes windows of its own, and its blobs are read before the commit)."""
        self._offered.wait()
        return self._sampled

    def results(self) -> Mapping[BlobId, str | None]:
        """Blob -> its error (None: it read and hashed to its id), for the blobs of the sample and ``verified``;
        only ``verified`` when the reads themselves failed (the store unreachable, say): then every blob of the
        backup's sample is read before the commit."""
        try:
            failures = self._future.result()
        except Exception:  # noqa: BLE001 -- a shortcut only: the blobs are read again, and that failure is heard
            return Checked(frozenset(), {}, self._verified)
        return Checked(self._sampled or frozenset(), failures, self._verified)


class EarlyCheckStopped(Exception):
    """An early check stopped before it had read its sample (``EarlyCheck.stop``)."""


class Checked(Mapping[BlobId, "str | None"]):
    """Blobs read and re-hashed in this run, blob -> its error (None: it read), kept as the digests of those read
    and the errors of those that failed: an early check of a large parent reads tens of thousands."""

    def __init__(self, digests: frozenset[bytes], failures: Mapping[BlobId, str], verified: frozenset[BlobId]) -> None:
        self._digests = digests
        self._failures = failures
        self._verified = verified

    def __contains__(self, blob: object) -> bool:
        if blob in self._failures or blob in self._verified:
            return True
        try:
            return isinstance(blob, str) and bytes.fromhex(blob) in self._digests
        except ValueError:
            return False

    def __getitem__(self, blob: BlobId) -> str | None:
        if blob not in self:
            raise KeyError(blob)
        return self._failures.get(blob)

    def __iter__(self) -> Iterator[BlobId]:
        yield from self._verified
        for digest in self._digests:
            blob = BlobId(digest.hex())
            if blob not in self._verified:
                yield blob

    def __len__(self) -> int:
        return sum(1 for _ in self)
