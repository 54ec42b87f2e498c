"""Where the Dagster instance lives for contimg, and how it is created on first use."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from resources.settings import dagster_home

TEMPLATES = Path(__file__).parent / "instance_templates"
#: The dagster.yaml templates `contimg init-home --profile` knows (docs/ops/scaling.md).
PROFILES = ("embedded", "production")
#: Files written next to dagster.yaml for a profile (never overwritten either).
PROFILE_EXTRAS = {"production": ("celery_worker.yaml",)}


def ensure_dagster_home(template: str = "embedded") -> Path:
    """Create DAGSTER_HOME with our dagster.yaml if missing; export it for child processes.

    An existing dagster.yaml is never overwritten: operators own it after the first run.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(TEMPLATES / f"{template}.yaml", config)
    for extra in PROFILE_EXTRAS.get(template, ()):
        if not (home / extra).exists():
            shutil.copyfile(TEMPLATES / extra, home / extra)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
