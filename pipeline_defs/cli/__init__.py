"""The `contimg` command line. Each sub-command lives in a module of this package."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """contimg: catalogue, preview, grade and count radio continuum images."""


def _register() -> None:
    # Imported here so that `contimg --help` lists everything and a module holds one command group.
    from pipeline_defs.cli import catalog, db, demo, fits, health, metrics, sample_data

    for module in (db, demo, fits, health, metrics, sample_data, catalog):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
