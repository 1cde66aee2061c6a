"""Bulk INSERT parameters: whole columns sent as one PostgreSQL array literal each.

Shared by the readings' and the treatments' bulk inserts (observations.services,
observations.treatments.services)."""

# Rows per INSERT statement: large enough that 100,000 readings take a handful of round trips,
# small enough to keep each statement's parameter arrays modest.
INSERT_CHUNK = 20_000


def text_array(values) -> str:
    """A PostgreSQL array literal of quoted strings (None is NULL).

    Sent as one text parameter and cast server-side (::text[], ::timestamptz[]): adapting
    100,000 Python objects one by one in the driver costs more than the INSERT itself.
    """
    return "{" + ",".join(
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    ) + "}"


def number_array(values) -> str:
    """As text_array, for numbers; None is NULL."""
    return "{" + ",".join("NULL" if v is None else repr(float(v)) for v in values) + "}"
