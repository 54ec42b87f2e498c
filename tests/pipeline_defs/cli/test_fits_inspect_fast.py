"""`contimg fits inspect` over many files: worker processes, the imports it avoids.

The output contract (tests/pipeline_defs/cli/test_fits_cli.py) must not depend on how the work
is spread: the same lines in the same order from one process, from threads or from a pool of
worker processes, and a broken file still gets its one record among the others.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline_defs.cli import fits as fits_cli
from pipeline_defs.cli import main
from resources.fits.synthetic import SampleFile, generate_sample_data
from tests.pipeline_defs.cli.as_typed import REPO

RUNNER = CliRunner()


def _samples(tmp_path: Path) -> list[SampleFile]:
    """Good images with every kind of broken file among them (sorted: broken ones interleaved)."""
    files = generate_sample_data(tmp_path / "in", days=2, per_day=6, size=32, seed=5)
    return sorted(files, key=lambda f: f.path.name)


def _inspect(args: list[str]) -> tuple[int, str, str]:
    result = RUNNER.invoke(main, ["fits", "inspect", *args])
    return result.exit_code, result.stdout, result.stderr


def test_process_count_needs_many_files_and_several_cores() -> None:
    per = fits_cli.FILES_PER_PROCESS
    assert fits_cli.process_count(per * 10, workers=4, cores=1) == 1
    assert fits_cli.process_count(per * 2 - 1, workers=4, cores=8) == 1
    assert fits_cli.process_count(per * 2, workers=4, cores=2) == 2
    assert fits_cli.process_count(per * 10, workers=4, cores=8) == 4
    assert fits_cli.process_count(per * 10, workers=1, cores=8) == 1
    assert fits_cli.process_count(0, workers=4, cores=8) == 1


@pytest.mark.parametrize("as_json", [True, False])
def test_worker_processes_give_the_sequential_output_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    files = _samples(tmp_path)
    paths = [str(f.path) for f in files] * 3  # repeats too: order is by argument, not by file
    flags = ["--json"] if as_json else []
    sequential = _inspect([*flags, "--workers", "1", *paths])

    started = tmp_path / "workers"
    started.mkdir()
    real_start = fits_cli._start_worker

    def start_and_sign(use_cache: bool) -> None:
        (started / str(os.getpid())).touch()
        real_start(use_cache)

    monkeypatch.setattr(fits_cli, "process_count", lambda files, workers: 2)
    monkeypatch.setattr(fits_cli, "_start_worker", start_and_sign)
    parallel = _inspect([*flags, *paths])
    assert len(list(started.iterdir())) == 2  # two forked workers did the parsing
    # Seen once in CI (not reproduced in 30 local runs, loaded or not): show what differs.
    for part, (got, want) in enumerate(zip(parallel, sequential, strict=True)):
        diff = "".join(
            difflib.unified_diff(
                str(want).splitlines(keepends=True), str(got).splitlines(keepends=True)
            )
        )
        assert got == want, f"part {part} (exit, stdout, stderr) differs:\n{diff}"
    exit_code, out, _ = parallel
    assert exit_code == 1  # the broken files
    if as_json:
        records = [json.loads(line) for line in out.splitlines()]
        assert [r["path"] for r in records] == paths
        expected = [f.inspect_error for f in files] * 3
        assert [r.get("error") for r in records] == expected
    else:
        failed = sum(f.inspect_error is not None for f in files) * 3
        assert out.count("\n  FAILED     ") == failed
        assert out.rstrip().endswith(
            f"{len(paths)} file(s): {len(paths) - failed} ok, {failed} failed"
        )


def _die(path: str) -> dict[str, object]:
    """A worker killed mid-way (the OOM killer, a crash in a C library). Module-level: the
    pool sends its tasks' function by name."""
    os._exit(3)


def test_a_broken_pool_leaves_its_files_to_the_main_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(f.path) for f in _samples(tmp_path)]
    sequential = _inspect(["--json", "--workers", "1", *paths])

    monkeypatch.setattr(fits_cli, "process_count", lambda files, workers: 2)
    monkeypatch.setattr(fits_cli, "_inspect_in_worker", _die)
    exit_code, out, err = _inspect(["--json", *paths])
    assert (exit_code, out) == sequential[:2], err
    assert "warning: worker processes failed" in err and "parsing here" in err


def test_inspect_imports_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    """As typed: astropy, numpy, SQLAlchemy, Dagster and prometheus_client cost 0.5-3 s to
    import; `fits inspect` of ordinary images (and of a broken file) needs none of them."""
    files = generate_sample_data(tmp_path / "in", days=1, per_day=3, size=32, seed=1,
                                 broken=False)  # fmt: skip
    paths = [str(f.path) for f in files] + [str(tmp_path / "missing.fits")]
    code = (
        "import sys\n"
        "from pipeline_defs.cli import main\n"
        f"try:\n    main.main(['fits', 'inspect', '--json', *{paths!r}], prog_name='contimg')\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    env = {**os.environ, "CONTIMG_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    loaded = set(result.stderr.split())
    assert loaded & {"astropy", "numpy", "sqlalchemy", "dagster", "prometheus_client"} == set()
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["ok"] for r in records] == [True, True, True, False]
    assert records[-1]["error"] == "FITSFileAccessError"
