"""Where the Dagster instance lives for contimg, and how it is created on first use."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from resources.settings import dagster_home

TEMPLATES = Path(__file__).parent / "instance_templates"
#: The dagster.yaml templates `contimg init-home --profile` knows (docs/ops/scaling.md).
PROFILES = ("embedded", "production")


def ensure_dagster_home(template: str = "embedded") -> Path:
    """Create DAGSTER_HOME with our dagster.yaml if missing; export it for child processes.

    An existing dagster.yaml is never overwritten: operators own it after the first run.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(TEMPLATES / f"{template}.yaml", config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
