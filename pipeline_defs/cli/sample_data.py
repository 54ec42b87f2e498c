"""`contimg sample-data`: write synthetic DSA-110-like images (and a few broken files)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import click

from pipeline_defs.cli.output import fail, sample_day_options
from resources.errors import ContimgError
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
def sample_data(
    out_dir: Path | None,
    days: int,
    start: dt.date,
    per_day: int,
    size: int,
    seed: int,
    broken: bool,
) -> None:
    """Write realistic synthetic DSA-110 images over several observation days (deterministic)."""
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
    for f in files:
        if f.kind != "good":
            expect = f.inspect_error or f"parses ({f.warning})"
            ingest = f.ingest_error or "ingested"
            click.echo(f"  broken {f.path.name}: inspect -> {expect}; ingest -> {ingest}")


COMMANDS: list[click.Command] = [sample_data]
