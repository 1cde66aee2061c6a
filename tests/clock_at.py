"""pytest plugin for bin/test-at: every test starts at one chosen instant of the wall clock.

bin/test-at preloads libfaketime for pytest and for the embedded PostgreSQL it starts, with the
clock's offset read from a file on every call (FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE). Before
each test this plugin writes the offset that puts "now" at GLUCAST_TEST_AT; the clock then runs
on normally through the test. So a test that would break at the end of a 5-minute cycle, an hour,
local midnight or a DST change can be run exactly there, on demand, instead of once in a while
on CI. Without those variables (plain bin/test) it does nothing.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

import pytest

_FILE = os.environ.get("FAKETIME_TIMESTAMP_FILE")
_AT = os.environ.get("GLUCAST_TEST_AT")


def _set_offset(seconds: float) -> None:
    with open(_FILE, "w") as handle:
        handle.write(f"{seconds:+.3f}s")


@pytest.fixture(autouse=True)
def _start_at_the_chosen_instant():
    if _FILE and _AT:
        _set_offset(0)  # the real clock, to measure the offset against
        _set_offset(datetime.fromisoformat(_AT).timestamp() - time.time())
    yield
