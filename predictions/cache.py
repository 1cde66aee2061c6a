"""Per-process LRU of loaded forecasters, bounded by count AND approximate memory.

Keyed by (person_id, version, artifact sha256): when a person's active version changes (or its
artifact is replaced), the next request builds a new key, misses, and loads the new model; the
person's older entries are dropped at that moment so they do not wait for LRU eviction.

Loading (reading files, checking the SHA-256, parsing boosters) takes tens of milliseconds;
a hit costs a dict lookup under a lock. Counters say which is happening (see `stats()`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings



@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    load_failures: int = 0
    load_seconds_total: float = 0.0
    load_seconds_max: float = 0.0
    entries: int = 0
    nbytes: int = 0
    fallbacks: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        loads = self.misses - self.load_failures
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "load_failures": self.load_failures,
            "load_ms_mean": round(1000 * self.load_seconds_total / loads, 2) if loads > 0 else None,
            "load_ms_max": round(1000 * self.load_seconds_max, 2),
            "entries": self.entries,
            "approx_mb": round(self.nbytes / 2**20, 2),
            "fallbacks": dict(self.fallbacks),
        }


@dataclass
class _Entry:
    value: object
    nbytes: int


class ForecasterCache:
    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max(1, int(max_entries))
        self.max_bytes = max(1, int(max_bytes))
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._stats = CacheStats()

    def get_or_load(self, key: tuple, loader, size_of=None):
        """The cached value for `key`, else `loader()` stored under it. Returns (value, was_hit).

        `size_of(value)` gives its approximate bytes (default: `approx_nbytes(value)`).
        A loader exception propagates and nothing is cached (counted as a load failure).
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self._stats.hits += 1
                return entry.value, True
            self._stats.misses += 1
        started = time.perf_counter()
        try:
            value = loader()
        except BaseException:
            with self._lock:
                self._stats.load_failures += 1
            raise
        elapsed = time.perf_counter() - started
        nbytes = int((size_of or approx_nbytes)(value))
        with self._lock:
            self._stats.load_seconds_total += elapsed
            self._stats.load_seconds_max = max(self._stats.load_seconds_max, elapsed)
            # A new version for this person makes its older entries useless.
            for stale in [k for k in self._entries if k[0] == key[0] and k != key]:
                self._drop(stale)
            if key in self._entries:  # another thread loaded it meanwhile
                self._drop(key)
            self._entries[key] = _Entry(value, nbytes)
            self._nbytes += nbytes
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries or self._nbytes > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))
                self._stats.evictions += 1
        return value, False

    def _drop(self, key) -> None:
        entry = self._entries.pop(key)
        self._nbytes -= entry.nbytes

    def count_fallback(self, reason: str) -> None:
        with self._lock:
            self._stats.fallbacks[reason] = self._stats.fallbacks.get(reason, 0) + 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._entries)

    def stats(self) -> dict:
        with self._lock:
            self._stats.entries = len(self._entries)
            self._stats.nbytes = self._nbytes
            return self._stats.as_dict()

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = CacheStats()


def approx_nbytes(forecaster) -> int:
    """Approximate memory of a loaded forecaster.

    Uses the forecaster's own estimate when it has one; otherwise the size of its serialized
    files, which for boosters and coefficient arrays is close to what they occupy loaded.
    """
    for name in ("approx_nbytes", "nbytes"):
        attr = getattr(forecaster, name, None)
        if attr is not None:
            return int(attr() if callable(attr) else attr)
    to_files = getattr(forecaster, "to_files", None)
    if to_files is not None:
        try:
            return sum(len(data) for data in to_files().values())
        except Exception:  # noqa: BLE001 - an estimate must never break serving
            pass
    return 1 << 20


_cache: ForecasterCache | None = None
_cache_lock = threading.Lock()


def forecaster_cache() -> ForecasterCache:
    """The process-wide cache, sized from settings GLUCAST_MODEL_CACHE_SIZE / _MB."""
    global _cache
    if _cache is None:
        with _cache_lock:
            if _cache is None:
                _cache = ForecasterCache(
                    settings.GLUCAST_MODEL_CACHE_SIZE,
                    settings.GLUCAST_MODEL_CACHE_MB * 2**20,
                )
    return _cache


def reset_forecaster_cache() -> None:
    """Forget the process-wide cache (tests, settings changes): the next call rebuilds it."""
    global _cache
    with _cache_lock:
        _cache = None
