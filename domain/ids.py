"""Time-sortable 64-bit ids (snowflake layout).

41 bits of milliseconds since EPOCH_MS, 10 worker bits, 12 sequence bits. Sorting ids
sorts by creation time, so ids double as pagination cursors.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_ID = (1 << 63) - 1


class IdGenerator:
    """Thread-safe snowflake generator; never goes backwards even if the clock does."""

    def __init__(self, worker: int | None = None) -> None:
        if worker is None:
            worker = int.from_bytes(os.urandom(2), "big") & MAX_WORKER
        if not 0 <= worker <= MAX_WORKER:
            raise ValueError(f"worker id must be 0..{MAX_WORKER}, got {worker}")
        self.worker = worker
        self._lock = threading.Lock()
        self._last_ms = 0
        self._sequence = 0

    def next_id(self) -> int:
        with self._lock:
            now = max(int(time.time() * 1000), self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    # Sequence exhausted within this millisecond: borrow the next one.
                    now += 1
            else:
                self._sequence = 0
            self._last_ms = now
            return ((now - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)) | (
                self.worker << SEQUENCE_BITS
            ) | self._sequence


def id_time(snowflake: int) -> datetime:
    """The creation time encoded in an id."""
    ms = (snowflake >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def parse_id(text: str) -> int | None:
    """A decimal id string as an int, or None when it cannot be one of ours."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
