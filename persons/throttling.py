"""Request rates counted in one place shared by every web process and machine, cheaply.

DRF's throttles keep a list of request times per user in Django's cache and read and write it on
every request. With a cache shared across processes (the database cache, or Redis) that is a
read, a write and, for the database cache, a count of the whole cache table plus a
synchronously committed transaction on every throttled request: several round trips and a wait
for the disk.

`SharedRateThrottle` counts requests per user and scope in fixed windows of the rate's length
with ONE atomic statement: an upsert into `RateCounter` (PostgreSQL), or INCR in Redis when
GLUCAST_REDIS_URL is set (a Redis default cache). Counting in fixed windows means a burst
across a window boundary can see up to twice the rate within one window length; the rate
still bounds every window, which is what a per-user rate protects. A lost counter (a database
crash within its last moment) costs one window of counting, never a refused request.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from rest_framework.throttling import ScopedRateThrottle

from persons.models import RateCounter


def _redis_cache() -> RedisCache | None:
    default = caches["default"]
    return default if isinstance(default, RedisCache) else None


def count_request(key: str, window: int, duration: int) -> int:
    """Add one request to `key` in `window`; returns the window's count so far."""
    redis = _redis_cache()
    if redis is not None:
        window_key = f"rate:{key}:{window}"
        redis.add(window_key, 0, timeout=duration + 1)
        return int(redis.incr(window_key))
    table = RateCounter._meta.db_table
    upsert = f"""
        INSERT INTO {table} (key, window_index, count) SELECT %s, %s, 1 {{source}}
        ON CONFLICT (key) DO UPDATE SET
            count = CASE WHEN {table}.window_index = EXCLUDED.window_index THEN {table}.count + 1 ELSE 1 END,
            window_index = EXCLUDED.window_index
        RETURNING count
    """
    if connection.in_atomic_block:  # the request's own transaction commits it
        sql = upsert.format(source="")
    else:
        # Its own one-statement transaction, committed without waiting for the disk (a counter
        # is not worth a WAL flush; see the module docstring).
        sql = "WITH fast AS (SELECT set_config('synchronous_commit', 'off', true))" + upsert.format(
            source="FROM fast"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, window])
        return int(cursor.fetchone()[0])


class SharedRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle (per user and the view's `throttle_scope`) counted by count_request.

    The rate is read when a request comes, not at import time, so a changed setting
    (GLUCAST_FORECAST_RATE, a test's override) takes effect."""

    def get_rate(self):
        rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope) or super().get_rate()

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.key is None or self.num_requests is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends_at = (window + 1) * self.duration
        if count_request(self.key, window, self.duration) > self.num_requests:
            return self.throttle_failure()
        return True

    def wait(self):
        return max(self.window_ends_at - self.now, 1.0)
