"""The `env` fixture of the catalogue command tests: every database migrated, catalogue loaded."""

from __future__ import annotations

from tests.pipeline_defs.cli.catalogue_cli import catalogue_env

__all__ = ["catalogue_env"]  # registered under its fixture name, `env`
