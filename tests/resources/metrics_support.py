"""Helpers shared by the metrics tests: free ports, polling with a deadline, parsing expositions.

Also the targets of the child processes the multiprocess tests spawn. They import
prometheus_client only inside the child, after the parent has exported PROMETHEUS_MULTIPROC_DIR
(a spawned child inherits the parent's environment), so that the child writes mmap files.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Call `probe` until it returns something other than None; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last is not None:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)  # polling interval, not synchronisation: the probe decides


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a text exposition."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(exposition: str, name: str, **labels: str) -> float | None:
    return samples(exposition).get((name, tuple(sorted(labels.items()))))


def family_names(exposition: str) -> list[str]:
    return [family.name for family in text_string_to_metric_families(exposition)]


# --- child process targets (spawned) ---------------------------------------------------------


def child_count_and_hold(label: str, amount: int, conn: Connection) -> None:
    """Increment a counter, set a livesum gauge, report ready, then wait to be released.

    A pipe, not a multiprocessing.Event: setting an Event whose waiter was SIGKILLed deadlocks.
    """
    from prometheus_client import values

    from resources import metrics

    assert values.ValueClass._multiprocess, "child is not in multiprocess mode"
    metrics.IMAGES_PROCESSED.labels(asset="fits_metadata", outcome="ok").inc(amount)
    metrics.DB_POOL_CHECKED_OUT.labels(database=label).set(amount)
    metrics.DB_POOL_SIZE.labels(database="products").set(5)
    conn.send(os.getpid())
    conn.poll(60)
