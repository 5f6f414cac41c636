"""The reader's LRU of decompressed frames: bounded in bytes, least recently used dropped first."""

from __future__ import annotations

import pytest

from chalicelib.core.ids import PackId
from chalicelib.repository.frame_cache import FrameCache

PACK = PackId("a" * 64)


def test_keeps_frames_within_the_bound_dropping_the_least_recently_used() -> None:
    cache = FrameCache(1000)
    for offset in range(0, 600, 100):
        cache.put((PACK, offset), bytes(200))
        assert cache.size <= 1000

    assert cache.size == 1000 and len(cache) == 5
    assert cache.get((PACK, 0)) is None  # the oldest went first
    assert cache.get((PACK, 100)) == bytes(200)

    cache.put((PACK, 600), bytes(200))  # 100 was just used: 200 goes instead

    assert cache.get((PACK, 100)) is not None
    assert cache.get((PACK, 200)) is None
    assert cache.size == 1000


def test_a_frame_over_a_quarter_of_the_bound_is_not_kept() -> None:
    cache = FrameCache(1000)
    cache.put((PACK, 0), bytes(100))

    cache.put((PACK, 100), bytes(251))

    assert cache.get((PACK, 100)) is None
    assert cache.get((PACK, 0)) == bytes(100) and cache.size == 100


def test_putting_a_key_again_replaces_it_and_a_zero_bound_keeps_nothing() -> None:
    cache = FrameCache(1000)
    cache.put((PACK, 0), bytes(100))
    cache.put((PACK, 0), bytes(50))
    assert (len(cache), cache.size) == (1, 50)

    empty = FrameCache(0)
    empty.put((PACK, 0), b"x")
    assert empty.get((PACK, 0)) is None and empty.size == 0
    with pytest.raises(ValueError, match="must not be negative"):
        FrameCache(-1)
