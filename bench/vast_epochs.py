"""contimg on the VAST pipeline's four test epochs, against the Selavy catalogues shipped with them.

The only several-epoch radio images found in public packages' test data are the VAST pipeline's
(`vast_pipeline/tests/data/epoch0{1..4}.fits`: 256² ASKAP-like images of one field at 888 MHz, a
15" x 10" beam, a handful of bright point sources that move, appear and change between epochs;
with `epoch0N.selavy.components.txt`, the Selavy catalogues VAST's own tests read). This script
copies the four images into a scratch data directory with their DATE-OBS moved by a whole
number of days into contimg's partitions (they are dated 2020-08-03..06; nothing else is
changed), runs the README's range command on them (`dg launch --job daily_products_job
--partition-range ...`: catalogue, QA, extraction, association, forced photometry, variability)
and compares what the products database then holds with Selavy's components: per epoch the
components matched within one beam minor axis (10"), the peak-flux ratio and the position
offsets, and per sky source contimg's light curve and variability metrics beside Selavy's fluxes
at its position.

    .venv/bin/python bench/vast_epochs.py DIR   # DIR holds the epochs and their Selavy catalogues

The images are not part of contimg (their licence is the VAST pipeline's); docs/sources.md
("Real data") records what one run gave.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from sqlalchemy import create_engine, text

from resources.repositories.sky import separation_deg

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EPOCHS = ("01", "02", "03", "04")
#: The partitions start on 2025-10-01; the epochs are moved there, one day apart as they are.
FIRST_DAY = dt.date(2025, 10, 1)


def selavy(path: Path) -> list[dict[str, float]]:
    """ra, dec (deg), flux_peak, flux_int (mJy) of a Selavy components .txt file."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cols = line.split()
        rows.append(
            {"ra": float(cols[5]), "dec": float(cols[6]), "flux_peak": float(cols[10]),
             "flux_int": float(cols[12])}
        )  # fmt: skip
    return rows


def stage(source: Path, incoming: Path) -> list[tuple[str, dt.date]]:
    """Copy the epochs with DATE-OBS moved into the partitions; (file name, new day) each."""
    incoming.mkdir(parents=True)
    staged = []
    first = None
    for epoch in EPOCHS:
        with fits.open(source / f"epoch{epoch}.fits") as hdul:
            when = dt.datetime.fromisoformat(hdul[0].header["DATE-OBS"])
            first = first or when.date()
            moved = when + (
                dt.datetime.combine(FIRST_DAY, dt.time()) - dt.datetime.combine(first, dt.time())
            )
            hdul[0].header["DATE-OBS"] = moved.isoformat(timespec="milliseconds")
            name = f"{moved.strftime('%Y-%m-%dT%H:%M:%S')}_vast_epoch{epoch}.fits"
            hdul.writeto(incoming / name)
        staged.append((name, moved.date()))
    return staged


def separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    return separation_deg(ra1, dec1, ra2, dec2) * 3600.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="directory with epoch0N.fits and their catalogues")
    parser.add_argument("--keep", type=Path, help="work here instead of a temporary directory")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="contimg-vast-"))
    if work.exists() and any(work.iterdir()):
        shutil.rmtree(work)
    var = work / "var"
    staged = stage(args.data, var / "incoming")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    env.update(CONTIMG_DATA_DIR=str(var), DAGSTER_HOME=str(var / "dagster_home"),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")  # fmt: skip
    days = sorted({d for _, d in staged})
    for command in (
        ["contimg", "init-home"],
        ["contimg", "db", "upgrade", "--no-backup"],
        ["dg", "launch", "--job", "daily_products_job", "--partition-range",
         f"{days[0].isoformat()}...{days[-1].isoformat()}"],
    ):  # fmt: skip
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
            return 1
    engine = create_engine(f"sqlite:///{var / 'products.sqlite3'}")
    with engine.connect() as conn:
        grades = dict(
            conn.execute(
                text("SELECT i.path, q.grade FROM images i JOIN image_qa q ON q.image_id = i.id")
            ).all()
        )
        meas = conn.execute(text(
            "SELECT i.path, m.source_id, m.forced, m.ra, m.dec, m.flux_peak, m.flux_peak_err, "
            "m.flux_int, m.snr FROM measurements m JOIN images i ON i.id = m.image_id "
            "ORDER BY i.date_obs")).mappings().all()  # fmt: skip
        sources = conn.execute(text(
            "SELECT id, wavg_ra, wavg_dec, n_meas, n_meas_forced, v_peak, eta_peak, new "
            "FROM sources ORDER BY id")).mappings().all()  # fmt: skip
    print(f"cpu {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; work dir {work}")
    print(f"QA grades: {sorted(grades.values())}")
    offsets, ratios = [], []
    by_epoch: dict[str, list[dict[str, float]]] = {}
    for (name, _), epoch in zip(staged, EPOCHS, strict=True):
        ours = [m for m in meas if m["path"].endswith(name) and not m["forced"]]
        forced = [m for m in meas if m["path"].endswith(name) and m["forced"]]
        cat = selavy(args.data / f"epoch{epoch}.selavy.components.txt")
        by_epoch[epoch] = cat
        matched = 0
        for c in cat:
            best = min(
                ours, key=lambda m: separation_arcsec(m["ra"], m["dec"], c["ra"], c["dec"]),
                default=None,
            )  # fmt: skip
            if best is None:
                continue
            sep = separation_arcsec(best["ra"], best["dec"], c["ra"], c["dec"])
            if sep <= 10.0:
                matched += 1
                offsets.append(sep)
                ratios.append(best["flux_peak"] / c["flux_peak"])
        print(f"epoch{epoch}: Selavy {len(cat)} components, contimg {len(ours)} blind + "
              f"{len(forced)} forced; {matched} of Selavy's matched within 10\"")  # fmt: skip
    print(
        f"peak flux contimg / Selavy: median {np.median(ratios):.4f}, "
        f"min {min(ratios):.4f}, max {max(ratios):.4f} ({len(ratios)} pairs)"
    )
    print(f'position offset: median {np.median(offsets):.2f}", max {max(offsets):.2f}"')
    print("sources (contimg): id, n_meas (forced), V_peak, eta_peak, new; Selavy's light curve")
    for s in sources:
        rows = [m for m in meas if m["source_id"] == s["id"]]
        curve = []
        for epoch in EPOCHS:
            near = [c for c in by_epoch[epoch]
                    if separation_arcsec(c["ra"], c["dec"], s["wavg_ra"], s["wavg_dec"]) <= 10.0]  # fmt: skip
            curve.append(f"{near[0]['flux_peak']:.0f}" if near else "-")
        ours = "/".join(f"{m['flux_peak']:.0f}{'f' if m['forced'] else ''}" for m in rows)
        print(f"  {s['id']}: {s['n_meas']} ({s['n_meas_forced']}), V {s['v_peak'] or 0:.3f}, "
              f"eta {s['eta_peak'] or 0:.1f}, new {bool(s['new'])}; contimg {ours}; "
              f"Selavy {'/'.join(curve)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
