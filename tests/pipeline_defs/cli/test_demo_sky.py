"""`contimg sample-data --sky` and `contimg demo` end to end: the demo's known sky comes back
out of the source assets - the truth list's variables are the sources of highest stored η, each
bright steady source is one source measured in every image - and its summary says so."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline_defs.cli import main
from pipeline_defs.cli.demo import DEMO_MIN_ETA, DEMO_MIN_V, SUMMARY_WIDTH
from resources.database import Databases
from resources.fits.sky import TRUTH_FILE, read_truth
from resources.repositories.products import SourceFilter, list_sources

RUNNER = CliRunner()
NOISE_MJY = 0.5  # ImageSpec.noise_jy of the sample images
BMAJ_ARCSEC = 20.0


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    d_ra = (ra1 - ra2 + 180.0) % 360.0 - 180.0
    return 3600.0 * math.hypot(d_ra * math.cos(math.radians(dec1)), dec1 - dec2)


def test_sample_data_sky_writes_the_truth(tmp_path: Path) -> None:
    out = tmp_path / "in"
    args = ["sample-data", "--sky", "--days", "1", "--per-day", "2", "--size", "128", "--out"]
    result = RUNNER.invoke(main, [*args, str(out), "--no-broken"])
    assert result.exit_code == 0, result.output
    truth, fluxes = read_truth(out)
    kinds = {k: sum(1 for t in truth if t.kind == k) for k in ("steady", "variable", "transient")}
    assert (
        f"sky of one field: {len(truth)} sources ({kinds['steady']} steady, "
        f"{kinds['variable']} variable, {kinds['transient']} transient); "
        f"truth in {out / TRUTH_FILE}"
    ) in result.output
    assert sorted(fluxes) == sorted(p.name for p in out.glob("*_dec*"))


def test_sample_data_sky_is_not_for_hdf5(tmp_path: Path) -> None:
    result = RUNNER.invoke(main, ["sample-data", "--hdf5", "--sky", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--sky" in result.output


def test_demo_recovers_the_known_sky(data_dir: Path) -> None:
    result = RUNNER.invoke(main, ["demo", "--days", "2", "--per-day", "4"])
    assert result.exit_code == 0, result.output
    truth, fluxes = read_truth(data_dir / "incoming")
    n_images = len(fluxes)
    with Databases.from_env().connect("products") as conn:
        sources, _ = list_sources(conn, SourceFilter(sort="eta", limit=None))

    def near(ra: float, dec: float) -> list[dict[str, object]]:
        return [
            s
            for s in sources
            if _separation_arcsec(ra, dec, float(s["wavg_ra"]), float(s["wavg_dec"]))
            < 1.5 * BMAJ_ARCSEC
        ]

    # Every bright steady source is exactly one source, measured (blind or forced) in each image.
    bright = [t for t in truth if t.kind == "steady" and t.mean_flux_mjy > 10 * NOISE_MJY]
    assert len(bright) >= 5
    one_each = [t for t in bright if len(near(t.ra_deg, t.dec_deg)) == 1]
    assert one_each == bright
    for t in bright:
        (s,) = near(t.ra_deg, t.dec_deg)
        assert s["n_meas"] == n_images and s["n_meas_forced"] == 0, (t, s)
        assert _separation_arcsec(t.ra_deg, t.dec_deg, s["wavg_ra"], s["wavg_dec"]) < 2.0
        assert float(s["avg_flux_peak"]) == pytest.approx(t.mean_flux_mjy, rel=0.05, abs=0.5)

    # The variables and the transient of the truth are the sources of highest eta, and pass the
    # demo's cuts; no steady source does.
    changing = [t for t in truth if t.kind in ("variable", "transient")]
    matched = []
    for t in changing:
        (s,) = near(t.ra_deg, t.dec_deg)
        matched.append(s["id"])
    top = [s["id"] for s in sources[: len(changing)]]  # sorted by eta_int, largest first
    assert sorted(top) == sorted(matched)
    passing = [
        s["id"] for s in sources if s["eta_int"] >= DEMO_MIN_ETA and s["v_int"] >= DEMO_MIN_V
    ]
    assert sorted(passing) == sorted(matched)
    (transient,) = [t for t in truth if t.kind == "transient"]
    (s,) = near(transient.ra_deg, transient.dec_deg)
    assert s["new"] and s["n_meas_forced"] >= 1  # forced backwards into the earlier images
    assert s["n_meas"] == n_images

    # The summary lists them, in eta order, and points at `contimg sources show`.
    everything = result.output.splitlines()
    blind = sum(int(s["n_meas"]) - int(s["n_meas_forced"]) for s in sources)
    head = f"sources       {len(sources)} from {blind} detections"
    lines = everything[next(i for i, x in enumerate(everything) if x.startswith(head)) :]
    assert all(len(line) <= SUMMARY_WIDTH for line in lines), max(lines, key=len)
    assert len(lines) <= len(passing) + 8, lines  # short: a few lines past the table
    start = next(i for i, line in enumerate(lines) if line.startswith("variable candidates"))
    assert lines[start + 1].split()[0] == "ID"
    listed = [int(lines[start + 2 + k].split()[0]) for k in range(len(passing))]
    assert listed == [i for i in top if i in passing]
    assert re.search(rf"contimg sources show {listed[0]}\b", result.output)
