"""A small LRU of decompressed pack frames, bounded in bytes and shared by one reader's threads."""

from __future__ import annotations

import threading
from collections import OrderedDict

from chalicelib.core.ids import PackId

FrameKey = tuple[PackId, int]  # pack, frame offset


class FrameCache:
    """Decompressed frames by (pack, frame offset), least recently used dropped first.

    Neighbouring blobs share a frame, so reading a backup tree by tree, or one object after another, keeps hitting
    the frame just read. Frames larger than a quarter of the bound (a big blob alone in its frame) are not kept:
    one of them would push out every small frame and is rarely read twice.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self._frames: OrderedDict[FrameKey, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def size(self) -> int:
        """Bytes held now; never more than ``max_bytes``."""
        return self._size

    def get(self, key: FrameKey) -> bytes | None:
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
            return frame

    def put(self, key: FrameKey, frame: bytes) -> None:
        if len(frame) > self.max_bytes // 4:
            return
        with self._lock:
            old = self._frames.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._frames[key] = frame
            self._size += len(frame)
            while self._size > self.max_bytes:
                _, dropped = self._frames.popitem(last=False)
                self._size -= len(dropped)
