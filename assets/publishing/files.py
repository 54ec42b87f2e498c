"""Temporary files of the product writers, and the sweep that removes those a crash left behind.

Every file contimg writes under the thumbnail, QA-report, day-preview and publish directories is
written to a temporary name in the destination's own directory and renamed into place, so a
reader sees the old file or the new one, never half of one. A process killed between the write
and the rename (`kill -9`, OOM, a node lost) leaves its temporary file behind; nothing else
would ever remove it. So every writer takes its temporary name from `temp_path`, which makes the
name recognisable and says who owns it:

    .<file name>.contimg-tmp.<host>.<pid>.<random>

and each run sweeps the day folders it is about to write (`sweep_stale`): a temporary file of
this host whose process is gone is removed at once; one of a live process is left alone (a
concurrent run of the same partition is writing it right now), unless it is older than
`STALE_AFTER` (the pid was reused); one of another host (a shared file system) is removed only
after `STALE_AFTER`. Names of the writers before this scheme (`.<name>.tmp`,
`.<name>.<random>.tmp`) are removed after `LEGACY_STALE_AFTER`.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from resources.processes import pid_alive

MARKER = ".contimg-tmp."
#: A temporary file older than this is stale whoever owns it: no product write takes this long,
#: and a pid that looks alive after so long was reused by another process.
STALE_AFTER = 24 * 3600.0
#: Temporary names of the writers before `temp_path` carry no owner: they are swept once no
#: writer could still be working on them.
LEGACY_STALE_AFTER = 3600.0

_OWNED = re.compile(r"^\..+" + re.escape(MARKER) + r"(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]+$")
# `.<name>.tmp` (publish link, QA report) and `.<name>.<8 random>.tmp` (tempfile.mkstemp).
_LEGACY = re.compile(r"^\..+\.(fits|fz|gz|png|json)(\.[A-Za-z0-9_]{8})?\.tmp$")


def _host() -> str:
    """This host's name as it appears in temporary names (no dots: they separate the fields)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def temp_path(dest: str | os.PathLike[str]) -> Path:
    """A fresh temporary name beside `dest`, owned by this host and process (see module doc)."""
    target = Path(dest)
    token = secrets.token_hex(4)
    return target.with_name(f".{target.name}{MARKER}{_host()}.{os.getpid()}.{token}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable: without it a power cut may bring the old name back."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # e.g. a file system without directory handles: the rename still happened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(dest: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `dest` through a temporary file of `temp_path` (fsync, rename).

    The temporary file is removed when the write or the rename fails; only a killed process
    leaves one, and the next run's `sweep_stale` removes it.
    """
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


@dataclass
class SweepReport:
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # owned by a live writer


def is_stale(path: Path, *, now: float | None = None) -> bool | None:
    """True: a leftover to remove; False: a temporary file someone may still write; None: not
    a temporary file of ours."""
    name = path.name
    owned = _OWNED.match(name)
    legacy = None if owned else _LEGACY.match(name)
    if owned is None and legacy is None:
        return None
    try:
        age = (now if now is not None else time.time()) - path.lstat().st_mtime
    except FileNotFoundError:
        return False  # renamed into place meanwhile
    if legacy is not None:
        return age > LEGACY_STALE_AFTER
    assert owned is not None
    if age > STALE_AFTER:
        return True
    if owned["host"] != _host():
        return False
    pid = int(owned["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def sweep_stale(
    folders: Iterable[str | os.PathLike[str]], *, recursive: bool = False
) -> SweepReport:
    """Remove the stale temporary files in `folders` (missing folders are skipped)."""
    report = SweepReport()
    now = time.time()
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            continue
        candidates = root.rglob(".*") if recursive else root.glob(".*")
        for path in candidates:
            if not path.is_file():
                continue
            verdict = is_stale(path, now=now)
            if verdict is None:
                continue
            if not verdict:
                report.kept.append(path)
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            report.removed.append(path)
    return report
