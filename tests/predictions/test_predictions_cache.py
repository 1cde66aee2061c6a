"""The per-process forecaster cache: LRU by count and by memory, counters, per-person eviction."""

import pytest

from predictions.cache import ForecasterCache


class Thing:
    def __init__(self, nbytes):
        self.nbytes = nbytes


def test_hits_misses_and_lru_order_by_count():
    cache = ForecasterCache(max_entries=2, max_bytes=10**9)
    cache.get_or_load((1, "1.0.0", "a"), lambda: Thing(10))
    cache.get_or_load((2, "1.0.0", "b"), lambda: Thing(10))
    value, hit = cache.get_or_load((1, "1.0.0", "a"), lambda: pytest.fail("must be cached"))
    assert hit
    cache.get_or_load((3, "1.0.0", "c"), lambda: Thing(10))  # evicts person 2, the least recent

    assert cache.keys() == [(1, "1.0.0", "a"), (3, "1.0.0", "c")]
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["evictions"], stats["entries"]) == (1, 3, 1, 2)
    assert stats["load_ms_mean"] is not None


def test_memory_bound_evicts_until_it_fits():
    cache = ForecasterCache(max_entries=100, max_bytes=250)
    for person in range(5):
        cache.get_or_load((person, "1.0.0", "x"), lambda: Thing(100))
    assert [k[0] for k in cache.keys()] == [3, 4]
    assert cache.stats()["evictions"] == 3


def test_one_entry_larger_than_the_budget_is_still_served():
    cache = ForecasterCache(max_entries=4, max_bytes=10)
    value, hit = cache.get_or_load((1, "1.0.0", "x"), lambda: Thing(1000))
    assert value.nbytes == 1000 and not hit and len(cache.keys()) == 1


def test_a_new_version_drops_the_persons_older_entries():
    cache = ForecasterCache(max_entries=10, max_bytes=10**9)
    cache.get_or_load((1, "1.0.0", "a"), lambda: Thing(1))
    cache.get_or_load((2, "1.0.0", "b"), lambda: Thing(1))
    cache.get_or_load((1, "1.1.0", "c"), lambda: Thing(1))
    assert sorted(cache.keys()) == [(1, "1.1.0", "c"), (2, "1.0.0", "b")]


def test_a_failed_load_is_counted_and_not_cached():
    cache = ForecasterCache(max_entries=10, max_bytes=10**9)

    def broken():
        raise OSError("disk")

    with pytest.raises(OSError):
        cache.get_or_load((1, "1.0.0", "a"), broken)
    assert cache.keys() == [] and cache.stats()["load_failures"] == 1
