"""`contimg sample-data`: write synthetic DSA-110-like images (and a few broken files)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import click
from click.core import ParameterSource

from pipeline_defs.cli.output import OneLineUsageError, fail, sample_day_options
from resources.errors import ContimgError
from resources.fits.sky import TRUTH_FILE, read_truth
from resources.fits.synthetic import generate_sample_data
from resources.settings import data_dir


@click.command("sample-data")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output directory [default: <data dir>/incoming].",
)
@sample_day_options(max_days=366)
@click.option(
    "--size",
    default=512,
    show_default=True,
    type=click.IntRange(32, 8192),
    help="Image side in pixels.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Random seed: the same seed, the same files.",
)
@click.option(
    "--broken/--no-broken",
    default=True,
    show_default=True,
    help="Also write deliberately broken files (dated on the first day).",
)
@click.option(
    "--sky",
    is_flag=True,
    help="Image one field again and again, with a known sky of steady, variable and transient "
    "sources (as `contimg demo` does), and write its truth beside the images: sky_truth.csv "
    "and sky_truth_fluxes.csv (docs/sources.md).",
)
@click.option(
    "--hdf5",
    is_flag=True,
    help="Write correlator subband files (UVH5) instead of images, to <data dir>/hdf5 by "
    "default: 4 observations a day (--per-day when given), 16 subbands each; with --broken the "
    "first day has a missing subband, a duplicate and a corrupt file.",
)
@click.option(
    "--ms",
    "ms",
    is_flag=True,
    help="Write measurement sets (pyuvdata) instead of images, to <data dir>/ms by default, "
    "named after the --hdf5 sample's subband groups: 4 a day (--per-day when given), every "
    "second one calibrated; with --broken the first day also has an MS without tables, a "
    "truncated one and one without a SPECTRAL_WINDOW subtable.",
)
@click.pass_context
def sample_data(
    ctx: click.Context,
    out_dir: Path | None,
    days: int,
    start: dt.date,
    per_day: int,
    size: int,
    seed: int,
    broken: bool,
    sky: bool,
    hdf5: bool,
    ms: bool,
) -> None:
    """Write realistic synthetic DSA-110 images over several observation days (deterministic).

    With --hdf5, the correlator's subband files of those days instead; with --ms, measurement
    sets (docs/upstream.md).
    """
    if hdf5 and ms:
        raise OneLineUsageError("--hdf5 and --ms write different things; give one of them")
    if ms:
        for name in ("size", "sky"):
            if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT:
                raise OneLineUsageError(f"--{name} is about images; it does not apply to --ms")
        explicit = ctx.get_parameter_source("per_day") is not ParameterSource.DEFAULT
        _sample_ms(out_dir, days, start, per_day if explicit else HDF5_PER_DAY, broken)
        return
    if hdf5:
        explicit = ctx.get_parameter_source("per_day") is not ParameterSource.DEFAULT
        if ctx.get_parameter_source("size") is not ParameterSource.DEFAULT:
            raise OneLineUsageError("--size is the side of an image; it does not apply to --hdf5")
        if sky:
            raise OneLineUsageError("--sky is a sky of images; it does not apply to --hdf5")
        _sample_hdf5(out_dir, days, start, per_day if explicit else HDF5_PER_DAY, seed, broken)
        return
    target = out_dir or data_dir() / "incoming"
    try:
        files = generate_sample_data(
            target,
            days=days,
            start=start,
            per_day=per_day,
            size=size,
            seed=seed,
            broken=broken,
            sky=sky,
        )
    except ContimgError as exc:
        fail(exc)
    except OSError as exc:
        where = exc.filename or target
        origin = "--out-dir" if out_dir is not None else "under CONTIMG_DATA_DIR"
        fail(f"cannot write to {where} ({origin}): {exc.strerror or exc}")
    good = [f for f in files if f.kind == "good"]
    per_date = Counter(str(f.obs_date) for f in good)
    click.echo(
        f"wrote {len(good)} images to {target}: "
        + ", ".join(f"{d} ({n})" for d, n in sorted(per_date.items()))
    )
    if sky:
        click.echo(sky_line(target))
    for f in files:
        if f.kind != "good":
            expect = f.inspect_error or f"parses ({f.warning})"
            ingest = f.ingest_error or "ingested"
            click.echo(f"  broken {f.path.name}: inspect -> {expect}; ingest -> {ingest}")


def sky_line(target: Path) -> str:
    """One line on the known sky just written: what kinds of source, where its truth is."""
    rows, _ = read_truth(target)
    kinds = Counter(r.kind for r in rows)
    parts = ", ".join(f"{kinds[k]} {k}" for k in ("steady", "variable", "transient"))
    return f"  sky of one field: {len(rows)} sources ({parts}); truth in {target / TRUTH_FILE}"


#: Observations a day of `--hdf5` unless --per-day says otherwise: enough for every case.
HDF5_PER_DAY = 4


def _sample_hdf5(
    out_dir: Path | None, days: int, start: dt.date, per_day: int, seed: int, broken: bool
) -> None:
    """Write the subband files (pyuvdata: a few seconds to start) and say what each case is."""
    if broken and per_day < HDF5_PER_DAY:
        raise OneLineUsageError(
            f"--hdf5 --broken needs --per-day of at least {HDF5_PER_DAY} (one observation per "
            "case); add --no-broken for fewer"
        )
    from resources.hdf5.synthetic import generate_sample_hdf5  # pyuvdata, astropy: on use

    target = out_dir or data_dir() / "hdf5"
    try:
        files, observations = generate_sample_hdf5(
            target, start=start, days=days, per_day=per_day, broken=broken, seed=seed
        )
    except OSError as exc:
        where = exc.filename or target
        origin = "--out" if out_dir is not None else "under CONTIMG_DATA_DIR"
        fail(f"cannot write to {where} ({origin}): {exc.strerror or exc}")
    per_date = Counter(o.group_id[:10] for o in observations)
    click.echo(
        f"wrote {len(files)} subband files to {target}: "
        + ", ".join(f"{d} ({n} observations)" for d, n in sorted(per_date.items()))
    )
    for o in observations:
        if o.missing:
            missing = ", ".join(f"sb{sb:02d}" for sb in o.missing)
            click.echo(f"  group {o.group_id}: incomplete, lacks {missing}")
    for f in files:
        if f.kind == "duplicate":
            click.echo(f"  {f.path.name}: a second sb{f.subband:02d} of group {f.group_id}")
        elif f.kind == "corrupt":
            click.echo(f"  {f.path.name}: truncated, unreadable (`contimg hdf5 failed`)")


def _sample_ms(out_dir: Path | None, days: int, start: dt.date, per_day: int, broken: bool) -> None:
    """Write the measurement sets (pyuvdata: a few seconds to start) and say what each case is."""
    from resources.ms.synthetic import generate_sample_ms  # pyuvdata, casacore: on use

    target = out_dir or data_dir() / "ms"
    try:
        sets = generate_sample_ms(target, start=start, days=days, per_day=per_day, broken=broken)
    except OSError as exc:
        where = exc.filename or target
        origin = "--out" if out_dir is not None else "under CONTIMG_DATA_DIR"
        fail(f"cannot write to {where} ({origin}): {exc.strerror or exc}")
    good = [s for s in sets if s.kind in ("good", "calibrated")]
    per_date = Counter(s.group_id[:10] for s in good)
    click.echo(
        f"wrote {len(good)} measurement sets to {target}: "
        + ", ".join(f"{d} ({n})" for d, n in sorted(per_date.items()))
        + f"; {sum(1 for s in good if s.kind == 'calibrated')} with CORRECTED_DATA"
    )
    for s in sets:
        if s not in good:
            click.echo(f"  {s.path.name}: broken ({s.kind}), unreadable (`contimg ms failed`)")


COMMANDS: list[click.Command] = [sample_data]
