"""A server that refuses new connections because a limit is reached gets an actionable hint."""

from __future__ import annotations

import pytest

from resources.database import _refused_hint


@pytest.mark.parametrize(
    "reason",
    [
        'OperationalError: FATAL:  too many connections for role "contimg"',
        'OperationalError: FATAL:  too many connections for database "contimg"',
        "OperationalError: FATAL:  sorry, too many clients already",
        (
            "OperationalError: FATAL:  remaining connection slots are reserved for "
            "non-replication superuser connections"
        ),
    ],
)
def test_connection_limits_point_at_the_pool_settings(reason: str) -> None:
    hint = _refused_hint(reason)
    assert hint is not None
    assert "connection limit is reached" in hint and "'database'" in hint


def test_other_connection_failures_keep_the_generic_hint() -> None:
    assert _refused_hint('OperationalError: FATAL:  password authentication failed for "x"') is None
    assert _refused_hint("OperationalError: connection refused") is None
