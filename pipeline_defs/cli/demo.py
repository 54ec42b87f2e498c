"""`contimg init-home` and `contimg demo`: the embedded default, end to end."""

from __future__ import annotations

import click

from pipeline_defs.instance import ensure_dagster_home


@click.command("init-home")
def init_home() -> None:
    """Create DAGSTER_HOME (default <data dir>/dagster_home) with contimg's dagster.yaml."""
    home = ensure_dagster_home()
    click.echo(f"DAGSTER_HOME={home}")


COMMANDS: list[click.Command] = [init_home]
