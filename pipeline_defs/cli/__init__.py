"""The `contimg` command line. Each sub-command lives in a module of this package.

Modules are imported only when their command runs (or its help is asked for): `contimg --help`
costs little more than importing click. Errors, tables and dates follow
`pipeline_defs.cli.output`, for every command.

Commands that only read leave nothing on disk, wherever they run: no data directory, no SQLite
file, no metrics directory. Their metric values stay in memory (`SHARED_METRICS` lists the
commands whose values go to the shared multiprocess directory, as a run's do), and the databases
are opened only when their files exist.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from pipeline_defs.cli.output import OneLineGroup, settings_checked
from resources.metrics_bootstrap import keep_metrics_in_memory

# name -> (module under pipeline_defs.cli, first paragraph of the command's help). The summary is
# written here so that `contimg --help` lists every command without importing any of them (their
# modules pull in SQLAlchemy, astropy, Alembic...); tests/pipeline_defs/cli/test_lazy_group.py
# checks it against the commands themselves.
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "cal": (
        "cal",
        "Calibration tables: register, retire, list, scan, apply lists and what was applied.",
    ),
    "db": (
        "db",
        "Schema migrations: upgrade, downgrade, status, check, history, revision, restore.",
    ),
    "demo": (
        "demo",
        "Migrate, write sample images (if the incoming dir is empty) and run the daily pipeline.",
    ),
    "fits": ("fits", "Inspect FITS images and manage the shared metadata cache."),
    "hdf5": ("hdf5", "Correlator subband files: observation groups, unreadable files, a scan."),
    "health": (
        "health",
        (
            "Reachability, latency, pool and schema state of every database (exit 1 if any is "
            "down or behind head)."
        ),
    ),
    "images": (
        "images",
        "Browse the image catalogue (filters by date, position, grade, telescope, path).",
    ),
    "init-home": (
        "demo",
        (
            "Create DAGSTER_HOME (default <data dir>/dagster_home) with contimg's dagster.yaml, and "
            "its storage with the pool limits applied (run it again after editing the limits)."
        ),
    ),
    "metrics": (
        "metrics",
        (
            "Prometheus metrics: aggregated over every contimg process, plus database and Dagster "
            "state."
        ),
    ),
    "ms": (
        "ms",
        "Measurement sets: the index by day and stage, one MS's lineage, unreadable ones, a scan.",
    ),
    "queue": ("queue", "The ingest queue: counts by state, oldest pending, stuck and failed rows."),
    "sample-data": (
        "sample_data",
        "Write realistic synthetic DSA-110 images over several observation days (deterministic).",
    ),
    "sources": (
        "sources",
        "Sky sources: cone/variability lists, one source's light curve, light curves at a position.",
    ),
    "stats": ("stats", "Per-day statistics: images, grades, failed parses, rms and dynamic range."),
}


#: Commands that open databases or run pipeline work: every setting is validated before they
#: run (`output.check_settings`: one line naming the variable, exit 2), whichever ones the
#: command itself reads. `fits`, `sample-data` and `init-home` open no database; the settings
#: they read are validated when read.
CHECKS_SETTINGS: frozenset[str] = frozenset(
    {
        "cal",
        "db",
        "demo",
        "hdf5",
        "health",
        "images",
        "metrics",
        "ms",
        "queue",
        "sources",
        "stats",
    }
)


#: (command, sub-command) whose metric values belong with the pipeline's, in
#: PROMETHEUS_MULTIPROC_DIR: they run pipeline work, migrate (`contimg_migration_runs_total`) or
#: serve the exposition. Every other command keeps its values in memory and writes no file.
SHARED_METRICS: frozenset[tuple[str, str | None]] = frozenset(
    {("demo", None), ("metrics", "serve"), ("db", "upgrade"), ("db", "downgrade")}
)


def _shares_metrics(args: list[str]) -> bool:
    name = args[0] if args else ""
    sub = next((a for a in args[1:] if not a.startswith("-")), None)
    return (name, None) in SHARED_METRICS or (name, sub) in SHARED_METRICS


class LazyGroup(OneLineGroup):
    """click's documented lazy-loading group: a sub-command's module is imported when it runs.

    `list_commands` and the command list of `--help` come from COMMAND_MODULES; `get_command`
    imports one module and takes the command from its COMMANDS, so `contimg fits inspect` never
    imports what `contimg images` needs (nor Dagster, which only `demo` and `metrics` import).
    """

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        # Before the command's module is imported: it imports prometheus_client, which fixes
        # the metrics mode of this process for good.
        if not _shares_metrics(args):
            keep_metrics_in_memory()
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return self.commands.get(cmd_name)
        module = importlib.import_module(f"{__name__}.{self.lazy[cmd_name][0]}")
        for command in module.COMMANDS:
            if command.name == cmd_name:
                if cmd_name in CHECKS_SETTINGS:
                    settings_checked(command)
                self.add_command(command)
                return command
        raise RuntimeError(f"{module.__name__}.COMMANDS has no command {cmd_name!r}")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's own, but the lazy commands' summaries are read without importing them."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows: list[tuple[str, str]] = []
        for name in names:
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                # click's own shortening, applied to the summary instead of the real command
                summary = click.Command(name, help=self.lazy[name][1])
                rows.append((name, summary.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, lazy=COMMAND_MODULES, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(
    package_name="contimg",
    prog_name="contimg",
    message="%(prog)s %(version)s",
    help="Print the installed contimg version and exit.",
)
def main() -> None:
    """contimg: catalogue, preview, grade and count radio continuum images."""


def all_commands() -> list[click.Command]:
    """Every command, imported (for tests and documentation tools; `contimg` itself is lazy)."""
    ctx = click.Context(main)
    return [c for name in main.list_commands(ctx) if (c := main.get_command(ctx, name)) is not None]
