"""Shared request counting (persons/throttling.py): one statement per request, exact under
concurrency, in PostgreSQL or in Redis."""

import threading

import pytest
from django.core.cache import caches
from django.db import connection

from persons.models import RateCounter
from persons.throttling import count_request


@pytest.mark.django_db
def test_a_window_counts_up_and_the_next_starts_again():
    assert [count_request("user:1:forecast", 100, 60) for _ in range(3)] == [1, 2, 3]
    assert count_request("user:1:forecast", 101, 60) == 1
    assert count_request("user:2:forecast", 101, 60) == 1
    assert RateCounter.objects.get(key="user:1:forecast").count == 1  # one row per key


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_are_all_counted():
    barrier = threading.Barrier(4)
    errors = []

    def hit():
        try:
            barrier.wait(timeout=30)
            for _ in range(10):
                count_request("user:9:forecast", 7, 60)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert RateCounter.objects.get(key="user:9:forecast").count == 40


def test_with_redis_the_counter_is_an_incr(settings):
    url = "redis://localhost:6379/15"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001
        pytest.skip(f"no Redis server answers at {url}")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
    caches["default"].delete_many(["rate:user:5:forecast:3"])
    try:
        assert [count_request("user:5:forecast", 3, 60) for _ in range(3)] == [1, 2, 3]
    finally:
        caches["default"].delete_many(["rate:user:5:forecast:3"])
