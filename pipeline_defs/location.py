"""The code location's name, and the run tag that files a run under it in the UI.

`make ui` (`dg dev`) and the daemon load the project as the location `contimg`
(`[tool.dg.project]` in pyproject.toml, and workspace.yaml for the `dagster` CLI); a test keeps
the three in step. The UI lists a job's runs, and counts its partitions, by the hidden
`.dagster/repository` tag, which Dagster writes only on runs launched through a workspace (the UI,
the daemon). Runs executed in a CLI process (`dg launch`, `contimg demo`) have no workspace
behind them; the jobs carry the same tag so that those runs appear under *Jobs → <job> → Runs*
and in the partition status like any other.
"""

from __future__ import annotations

CODE_LOCATION = "contimg"
# dagster._core.storage.tags.REPOSITORY_LABEL_TAG and RemoteRepositoryOrigin.get_label(): a
# Definitions object is the singleton repository `__repository__` of its location.
REPOSITORY_LABEL_TAG = ".dagster/repository"
LOCATION_TAGS: dict[str, str] = {REPOSITORY_LABEL_TAG: f"__repository__@{CODE_LOCATION}"}
