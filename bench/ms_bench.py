"""What reading a measurement set's summary costs (`resources.ms.reader.read_ms`).

    .venv/bin/python bench/ms_bench.py [--sets 50] [--repeat 3] [--write-all] [--json]

Makes `--sets` small sets (16 subbands x 4 channels, 3 antennas, 2 integrations: one written
by pyuvdata, the rest copies of its directory under other group-id names, unless
`--write-all`) and one bigger one (16 subbands x 48 channels, 20 antennas, 10 integrations),
then times, per set (median and 90th percentile over the sets, best of `--repeat` passes; the
page cache is warm, so this is CPU and system calls, not disk):

- `read_ms` end to end;
- its parts, replayed with casacore directly: the file-system checks (stat of table.dat,
  the subtables' table.dat), opening the main table (nrows, colnames), OBSERVATION's
  TIME_RANGE, FIELD and SPECTRAL_WINDOW (open + the few cells), `getcol("TIME")` on the main
  table, and the directory walk that sums the sizes;
- the alternative without casacore: `os.stat` + the name (group id -> start time) + the
  directory walk, and what that loses;
- the import of `casacore.tables` in a fresh interpreter (numpy already imported, and alone).

Wall-clock on a shared machine: the CPU count and load average are printed; compare ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from resources.ms import reader, synthetic

START = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)
CADENCE = dt.timedelta(minutes=5)
BIG = {"n_ants": 20, "n_times": 10, "n_channels": 48}


#: A full DSA-110 set: 117 antennas (6,903 baselines with autos) x 24 integrations (5 min).
DSA_ROWS = 6903 * 24


def time_column_at_scale(directory: Path, rows: int, repeat: int) -> dict[str, float]:
    """getcol("TIME") on a table of `rows` rows, TIME in an IncrementalStMan as pyuvdata
    writes it (24 distinct values), and in a StandardStMan (every row stored): best of `repeat`.
    A pyuvdata write of a set that size would hold ~2 GB of visibilities; TIME alone is the
    part of read_ms that grows with the rows."""
    import numpy as np
    from casacore.tables import makescacoldesc, maketabdesc, table

    values = np.repeat(5273942700.0 + 12.884901888 * np.arange(24), rows // 24)
    out: dict[str, float] = {}
    for manager in ("IncrementalStMan", "StandardStMan"):
        path = directory / f"time_{manager}.tab"
        desc = makescacoldesc("TIME", 0.0, datamanagertype=manager)
        with table(str(path), maketabdesc(desc), nrow=len(values), ack=False) as new:
            new.putcol("TIME", values)
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            with table(str(path), ack=False, readonly=True) as t:
                t.getcol("TIME")
            best = min(best, time.perf_counter() - started)
        out[manager] = 1000 * best
    return out


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def make_sets(directory: Path, count: int, write_all: bool) -> tuple[list[Path], float]:
    """`count` small sets, and the seconds one pyuvdata write took (after the import)."""
    synthetic.make_ms_uvdata(START, subbands=(0,))  # the one-off pyuvdata import, untimed
    started = time.perf_counter()
    first = synthetic.write_ms(directory, START)
    write_s = time.perf_counter() - started
    paths = [first]
    for k in range(1, count):
        moment = START + k * CADENCE
        if write_all:
            paths.append(synthetic.write_ms(directory, moment))
        else:
            paths.append(Path(shutil.copytree(first, directory / synthetic.ms_name(moment))))
    return paths, write_s


# --- the parts of read_ms, replayed ------------------------------------------------------------


def part_checks(ms: Path) -> None:
    os.stat(ms / "table.dat")
    for name in reader.REQUIRED_SUBTABLES:
        (ms / name / "table.dat").exists()


def part_open_main(ms: Path) -> None:
    from casacore.tables import table

    with table(str(ms), ack=False, readonly=True) as main:
        main.nrows()
        main.colnames()


def part_observation(ms: Path) -> None:
    from casacore.tables import table

    with table(str(ms / "OBSERVATION"), ack=False, readonly=True) as obs:
        obs.getcol("TIME_RANGE")


def part_field_spw(ms: Path) -> None:
    from casacore.tables import table

    with table(str(ms / "FIELD"), ack=False, readonly=True) as field:
        field.getcell("PHASE_DIR", 0)
        field.getcell("NAME", 0)
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False, readonly=True) as spw:
        spw.nrows()
        spw.getcol("NUM_CHAN")
        spw.getcol("REF_FREQUENCY")


def part_open_and_time(ms: Path) -> None:
    """Open the main table and read TIME (minus part_open_main = the TIME read)."""
    from casacore.tables import table

    with table(str(ms), ack=False, readonly=True) as main:
        main.nrows()
        main.colnames()
        main.getcol("TIME")


def part_size_walk(ms: Path) -> None:
    reader._directory_size(ms)


def no_casacore(ms: Path) -> None:
    """All one can have without casacore: stat, name, subtables present, size."""
    os.stat(ms / "table.dat")
    group = reader.group_id_from_name(ms.name)
    if group is not None:
        dt.datetime.strptime(group, reader.GROUP_FORMAT).replace(tzinfo=dt.UTC)
    for name in reader.REQUIRED_SUBTABLES:
        (ms / name / "table.dat").exists()
    reader._directory_size(ms)


def read_summary(ms: Path) -> None:
    reader.read_ms(ms)


PARTS: list[tuple[str, Callable[[Path], None]]] = [
    ("read_ms (end to end)", read_summary),
    ("  fs checks (stat, subtables)", part_checks),
    ("  open main table", part_open_main),
    ("  open main + getcol TIME", part_open_and_time),
    ("  OBSERVATION TIME_RANGE", part_observation),
    ("  FIELD + SPECTRAL_WINDOW", part_field_spw),
    ("  size walk (os.walk+lstat)", part_size_walk),
    ("no casacore: stat+name+walk", no_casacore),
]


def time_each(fn: Callable[[Path], None], paths: list[Path], repeat: int) -> list[float]:
    """Per-set seconds, the best of `repeat` passes for each set (one warm-up call first)."""
    fn(paths[0])
    best = [float("inf")] * len(paths)
    for _ in range(repeat):
        for i, path in enumerate(paths):
            started = time.perf_counter()
            fn(path)
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def summarise(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"median_ms": 1000 * statistics.median(ordered), "p90_ms": 1000 * p90}


def import_cost(statement: str, prelude: str = "", runs: int = 5) -> float:
    """Median seconds of `statement` in a fresh interpreter, after an untimed `prelude`."""
    code = (
        f"import time\n{prelude}\nt = time.perf_counter()\n{statement}\n"
        "print(time.perf_counter() - t)"
    )
    values = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
        values.append(float(out.strip()))
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-all", action="store_true", help="pyuvdata-write every set")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    load_before = load()
    imports = {
        "numpy_s": import_cost("import numpy"),
        "casacore_tables_after_numpy_s": import_cost("import casacore.tables", "import numpy"),
        "casacore_tables_cold_s": import_cost("import casacore.tables"),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    info: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ms_bench_") as scratch:
        tmp = Path(scratch)
        small, write_small_s = make_sets(tmp / "small", args.sets, args.write_all)
        started = time.perf_counter()
        big = synthetic.write_ms(tmp / "big", START, **BIG)  # type: ignore[arg-type]
        write_big_s = time.perf_counter() - started
        for label, paths in (("small", small), ("big", [big])):
            summary = reader.read_ms(paths[0])
            info[label] = {
                "sets": len(paths),
                "rows": summary.n_rows,
                "channels": summary.n_channels,
                "size_mb": summary.size_bytes / 1e6,
                "files": sum(len(f) for _r, _d, f in os.walk(paths[0])),
                "write_s": write_small_s if label == "small" else write_big_s,
            }
            repeat = args.repeat if label == "small" else max(args.repeat, 10)
            results[label] = {name: summarise(time_each(fn, paths, repeat)) for name, fn in PARTS}
        scale = time_column_at_scale(tmp, DSA_ROWS, max(args.repeat, 5))
    out = {
        "nproc": os.cpu_count(),
        "load_before": load_before,
        "load_after": load(),
        "imports": imports,
        "sets": info,
        "results": results,
        "time_column_at_dsa_scale_ms": {"rows": DSA_ROWS, **scale},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"os.cpu_count()={out['nproc']}  loadavg before {' '.join(f'{v:.2f}' for v in load_before)}"
        f"  after {' '.join(f'{v:.2f}' for v in out['load_after'])}"
    )
    for label in ("small", "big"):
        s = info[label]
        print(
            f"{label}: {s['sets']:.0f} set(s), {s['rows']:.0f} rows, {s['channels']:.0f} channels, "
            f"{s['size_mb']:.2f} MB in {s['files']:.0f} files; one pyuvdata write "
            f"{s['write_s']:.2f} s"
        )
    print(f"\n{'per set':34} {'small med':>10} {'p90':>8} {'big med':>10} {'p90':>8}  (ms)")
    for name, _fn in PARTS:
        a, b = results["small"][name], results["big"][name]
        print(
            f"{name:34} {a['median_ms']:10.3f} {a['p90_ms']:8.3f} "
            f"{b['median_ms']:10.3f} {b['p90_ms']:8.3f}"
        )
    for label in ("small", "big"):
        r = results[label]
        time_read = (
            r["  open main + getcol TIME"]["median_ms"] - r["  open main table"]["median_ms"]
        )
        print(f"{label}: getcol TIME alone ~ {time_read:.3f} ms (open+TIME minus open)")
    print(
        f"open + getcol TIME on {DSA_ROWS:,} rows (a full DSA-110 set): IncrementalStMan "
        f"{scale['IncrementalStMan']:.2f} ms, StandardStMan {scale['StandardStMan']:.2f} ms"
    )
    print(
        f"\nimport (fresh interpreter, median of 5): numpy {imports['numpy_s'] * 1000:.0f} ms; "
        f"casacore.tables after numpy {imports['casacore_tables_after_numpy_s'] * 1000:.0f} ms; "
        f"casacore.tables cold (numpy included) {imports['casacore_tables_cold_s'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
