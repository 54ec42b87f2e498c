"""The Dagster UI as an operator sees it after following the README, driven in Debian's Chromium
through Playwright.

The module fixture does what the README says, in its order and with its exact commands, against
a temporary data dir and DAGSTER_HOME: `make demo`, the range backfill (`dg launch ...`), then
`make ui` (webserver + daemon: `dg dev`), then the per-day backfill (`dagster job backfill ...`),
which the daemon of `make ui` runs. The tests then check what the UI shows: no run failed to
start and every run is listed under its job, the asset graph and its checks, the jobs and
sensors, a partition materialized by clicking through the Materialize dialog, each day's own
numbers and checks, the per-image grades, the contact sheet of `image_thumbnails` and the check
results of `image_qa`.

Screenshots of every page visited are written under the module's temporary folder; a failing
test adds one of the page as it was, and prints the paths and the server's log tail.

Chromium is Debian's (`/usr/bin/chromium`, installed by .ci/run): Playwright never downloads a
browser here. Without it the tests are skipped with the reason; under CONTIMG_REQUIRE_SERVICES=1
they fail instead.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FloatRect,
    Locator,
    Page,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from resources.settings import DATABASE_NAMES
from tests.resources.metrics_support import free_port
from tests.services import services_required
from tests.test_docs_commands import readme_command

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PARTITION = "2025-10-01"
DAYS = ("2025-10-01", "2025-10-02", "2025-10-03")  # the demo's days, the README's backfills
PER_DAY = 12  # `make demo`'s images per day; the sample data adds one with a NaN beam to the first
ASSETS = ("fits_metadata", "image_thumbnails", "image_qa", "pipeline_stats")  # group images
SOURCE_ASSETS = ("image_sources", "source_associations", "forced_photometry", "source_variability")
# Every asset of the location: the images and sources groups, and upstream's subband_groups
# and measurement_sets.
ALL_ASSETS = (*ASSETS, *SOURCE_ASSETS, "subband_groups", "measurement_sets")
GROUP_PAGE = "/locations/contimg/asset-groups/{group}"
# (check, status shown after the run): the NaN-beam sample file makes the beam check fail (warn).
CHECKS = {
    "fail_share_below_limit": "Succeeded",
    "every_image_has_qa": "Succeeded",
    "beam_present_on_all_images": "Failed",
}
JOBS = (
    "daily_products_job",
    "migrate_databases",
    "rollback_database",
    "database_status",
    "invalidate_fits_cache_job",
)
SENSORS = ("fits_ingest_sensor", "database_health_sensor", "run_failure_sensor")

SERVER_START_TIMEOUT_S = 120.0
UI_TIMEOUT_MS = 60_000  # generous: the machine may be shared; passing runs never wait it out
RUN_TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1440, "height": 900}
# The community sign-up dialog Dagster shows on localhost covers the page; it remembers its
# dismissal in localStorage under this key (dagster-webserver's CommunityNux.tsx).
DISMISS_COMMUNITY_NUX = "window.localStorage.setItem('communityNux', JSON.stringify('1'))"
# Set to a path (e.g. docs/img/asset-graph.png) to refresh the README's screenshot.
README_SCREENSHOT_ENV = "CONTIMG_README_SCREENSHOT"


def _require_chromium() -> None:
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return
    reason = f"{CHROMIUM} is missing (Debian package `chromium`, installed by .ci/run)"
    if services_required():
        pytest.fail(f"{reason} and CONTIMG_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


@dataclass
class UIServer:
    """A running `dagster dev` and where its state lives."""

    url: str
    data: Path
    home: Path
    shots: Path
    log: Path
    proc: subprocess.Popen[str]

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def instance(self):
        """The server's Dagster instance, opened from its DAGSTER_HOME."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.home))


def _server_env(data: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in DATABASE_NAMES:
        env.pop(f"CONTIMG_DB_{name.upper()}_URL", None)
    for var in ("CONTIMG_INCOMING_DIRS", "CONTIMG_THUMBNAIL_DIR", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(var, None)
    env["CONTIMG_DATA_DIR"] = str(data)
    env["DAGSTER_HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Steps in the run's own process: the UI is under test here, not the executor
    # (tests/pipeline_defs/test_executors.py), and a step process costs seconds on a busy machine.
    env["CONTIMG_EXECUTOR"] = "in_process"
    return env


def _run(command: list[str], env: dict[str, str], log: Path) -> None:
    """One README command from the project directory; its output appended to `log`."""
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}{result.stderr}"


def _wait_for_runs(instance, count: int, deadline_s: float) -> list:  # type: ignore[no-untyped-def]
    """Poll the instance until `count` runs exist and all are finished."""
    end = time.monotonic() + deadline_s
    while True:
        runs = instance.get_runs()
        if len(runs) >= count and all(r.is_finished for r in runs):
            return runs
        if time.monotonic() > end:
            pytest.fail(f"{len(runs)} runs after {deadline_s:g} s: {[r.status for r in runs]}")
        time.sleep(1)  # a poll interval, not a synchronisation


def _follow(proc: subprocess.Popen[str], log: Path, marker: str) -> threading.Event:
    """Copy the server's output to `log`; the event is set at `marker` or when output ends."""
    seen = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        with log.open("w") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if marker in line:
                    seen.set()
        seen.set()  # the server exited: wake the waiter, which then reads the return code

    threading.Thread(target=pump, name="dagster-dev-log", daemon=True).start()
    return seen


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop `dagster dev` and everything it started (webserver, daemon, code servers, runs)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    # Children that outlived the parent still carry its process group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    _require_chromium()
    root = tmp_path_factory.mktemp("dagster_ui")
    data = root / "var"
    home = data / "dagster_home"
    shots = root / "screenshots"
    shots.mkdir()
    env = _server_env(data, home)
    readme_log = root / "readme-commands.log"
    _run(["make", "demo"], env, readme_log)
    _run(shlex.split(readme_command("dg launch")), env, readme_log)
    port = free_port()
    proc = subprocess.Popen(
        ["make", "ui", f"UI_PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, stopped as a whole
    )
    server = UIServer(f"http://127.0.0.1:{port}", data, home, shots, root / "make-ui.log", proc)
    try:
        ready = _follow(proc, server.log, "Serving dagster-webserver on")
        if not ready.wait(SERVER_START_TIMEOUT_S) or proc.poll() is not None:
            pytest.fail(
                f"make ui did not serve within {SERVER_START_TIMEOUT_S:g} s "
                f"(exit status {proc.poll()}):\n{server.log_tail()}",
                pytrace=False,
            )
        _run(shlex.split(readme_command("dagster job backfill")), env, readme_log)
        # demo: one run per day; dg launch: one range run; the backfill: one run per day
        _wait_for_runs(server.instance(), 2 * len(DAYS) + 1, deadline_s=RUN_TIMEOUT_MS / 1000)
        yield server
    finally:
        _stop(proc)
        print(f"\nscreenshots: {shots}\nmake ui log: {server.log}\nREADME commands: {readme_log}")


@pytest.fixture(scope="module")
def browser(ui_server: UIServer) -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Session:
    """A browser page on the server, and the screenshots taken of it."""

    page: Page
    server: UIServer
    prefix: str
    taken: list[Path] = field(default_factory=list)

    def shot(self, name: str, *, full_page: bool = False, clip: FloatRect | None = None) -> Path:
        path = self.server.shots / f"{self.prefix}-{len(self.taken):02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page, clip=clip)
        self.taken.append(path)
        return path


def _open_session(
    browser: Browser, server: UIServer, prefix: str
) -> tuple[BrowserContext, Session]:
    context = browser.new_context(viewport=VIEWPORT, base_url=server.url)
    context.add_init_script(DISMISS_COMMUNITY_NUX)
    context.set_default_timeout(UI_TIMEOUT_MS)
    return context, Session(context.new_page(), server, prefix)


def _report(session: Session, request: pytest.FixtureRequest, failed: bool) -> None:
    if failed:
        try:
            session.shot("FAILED", full_page=True)
        except PlaywrightError as exc:  # the page may be gone; keep the test's own failure
            print(f"could not take the failure screenshot: {exc!r}")
    for path in session.taken:
        request.node.user_properties.append(("screenshot", str(path)))
    if failed:
        print("screenshots:\n  " + "\n  ".join(str(p) for p in session.taken))
        print(f"dagster dev log tail ({session.server.log}):\n{session.server.log_tail()}")


@pytest.fixture
def ui(browser: Browser, ui_server: UIServer, request: pytest.FixtureRequest) -> Iterator[Session]:
    expect.set_options(timeout=UI_TIMEOUT_MS)
    context, session = _open_session(browser, ui_server, request.node.name)
    try:
        yield session
    finally:
        report = getattr(request.node, "rep_call", None)
        _report(session, request, failed=report is None or report.failed)
        context.close()


@dataclass(frozen=True)
class LaunchedRun:
    run_id: str
    status: str
    partition: str | None
    screenshots: tuple[Path, ...]


@pytest.fixture(scope="module")
def launched_run(browser: Browser, ui_server: UIServer) -> LaunchedRun:
    """Materialize every asset for one partition through the UI's Materialize dialog."""
    context, session = _open_session(browser, ui_server, "launch")
    page = session.page
    failed = True
    try:
        page.goto("/asset-groups")
        page.get_by_role("button", name="Materialize all").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"materialize {len(ALL_ASSETS)} assets")
        # The dialog starts on the last 90 days; the sample day is older than that whenever it
        # exists at all (partitions start 2025-10-01), so the whole range is asked for.
        dialog.get_by_role("button", name="Show all partitions").click()
        selection = dialog.locator("input[type=text]").first
        selection.fill(PARTITION)
        selection.press("Enter")
        expect(dialog).to_contain_text("1 partition")
        session.shot("materialize-dialog")
        dialog.get_by_role("button", name="Launch 1 run").click()
        toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
        expect(toast).to_be_visible()
        short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
        instance = ui_server.instance()
        matches = [r.run_id for r in instance.get_runs() if r.run_id.startswith(short_id)]
        assert len(matches) == 1, f"run {short_id} not in the instance: {matches}"
        run_id = matches[0]
        page.goto(f"/runs/{run_id}")
        # The run page follows the run live; wait for a final status, then require success.
        final = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
        expect(final).to_be_visible(timeout=RUN_TIMEOUT_MS)
        session.shot("run", full_page=True)
        shown = final.inner_text()
        run = instance.get_run_by_id(run_id)
        failed = False
        return LaunchedRun(
            run_id=run_id,
            status=f"{shown} / {run.status.value}",
            partition=run.tags.get("dagster/partition"),
            screenshots=tuple(session.taken),
        )
    finally:
        if failed:
            try:
                session.shot("FAILED", full_page=True)
            except PlaywrightError as exc:  # the page may be gone; keep the real failure
                print(f"could not take the failure screenshot: {exc!r}")
            print("screenshots:\n  " + "\n  ".join(str(p) for p in session.taken))
            print(f"dagster dev log tail:\n{ui_server.log_tail()}")
        context.close()


def _asset_nodes(page: Page) -> Locator:
    return page.locator("svg foreignObject [class*='assetNodeContainer']")


def _asset_node(page: Page, name: str) -> Locator:
    return _asset_nodes(page).filter(has=page.locator(f'[data-tooltip="{name}"]'))


def test_asset_graph_lists_assets_and_checks(ui: Session) -> None:
    page = ui.page
    page.goto(GROUP_PAGE.format(group="sources"))
    expect(_asset_nodes(page)).to_have_count(len(SOURCE_ASSETS))
    for name in SOURCE_ASSETS:
        expect(_asset_node(page, name)).to_have_count(1)
    ui.shot("sources-graph")
    page.goto(GROUP_PAGE.format(group="images"))
    expect(_asset_nodes(page)).to_have_count(len(ASSETS))
    for name in ASSETS:
        expect(_asset_node(page, name)).to_have_count(1)
    checks = _asset_node(page, "image_qa").locator('a[href="/assets/image_qa?view=checks"]')
    expect(checks).to_have_text(re.compile(rf"\d+ / {len(CHECKS)} Passed"))
    ui.shot("asset-graph")
    checks.click()
    expect(page).to_have_url(re.compile(r"/assets/image_qa\?view=checks"))
    expect(page.get_by_text(f"Checks ({len(CHECKS)})")).to_be_visible()
    for check in CHECKS:
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    ui.shot("image-qa-checks-list")


def test_jobs_and_sensors_appear_under_their_names(ui: Session) -> None:
    page = ui.page
    page.goto("/jobs")
    for job in JOBS:
        expect(page.locator(f'a[href$="/jobs/{job}"]').first).to_have_text(job)
    ui.shot("jobs")
    page.goto("/automation")
    for sensor in SENSORS:
        # the link holds the name, then (on some renders) the sensor's kind: "Standard sensor"
        link = page.locator(f'a[href$="/sensors/{sensor}"]').first
        expect(link).to_have_text(re.compile(rf"^{sensor}(Standard sensor|Run status sensor)?$"))
    schedule = page.locator('a[href$="/schedules/daily_products_schedule"]').first
    expect(schedule).to_have_text("daily_products_schedule")
    ui.shot("automation")
    for job in ("migrate_databases", "database_status"):
        page.goto(f"/locations/contimg/jobs/{job}")
        expect(page.get_by_text(job, exact=True).first).to_be_visible()
        ui.shot(f"job-{job}")
    for sensor in SENSORS:
        page.goto(f"/locations/contimg/sensors/{sensor}")
        # The page title is the breadcrumb "Automation / <sensor>", then "Sensor in contimg".
        title = page.locator("span", has=page.locator('a[href="/automation"]')).first
        expect(title).to_have_text(re.compile(rf"^Automation\s*/\s*{sensor}$"))
        expect(page.get_by_text("Sensor in").first).to_be_visible()
        ui.shot(f"sensor-{sensor}")


def test_materializing_one_partition_from_the_ui_succeeds(
    launched_run: LaunchedRun, ui: Session, ui_server: UIServer
) -> None:
    import dagster as dg

    assert launched_run.status == "Success / SUCCESS", launched_run
    assert launched_run.partition == PARTITION
    instance = ui_server.instance()
    for name in ALL_ASSETS:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        assert event is not None, f"{name} was not materialized"
        assert event.run_id == launched_run.run_id
        assert event.asset_materialization.partition == PARTITION
    # The graph now shows the partition materialized and the checks' outcome.
    page = ui.page
    page.goto(GROUP_PAGE.format(group="images"))
    passed = sum(1 for status in CHECKS.values() if status == "Succeeded")
    expect(
        _asset_node(page, "image_qa").locator('a[href="/assets/image_qa?view=checks"]')
    ).to_have_text(f"{passed} / {len(CHECKS)} Passed")
    for name in ASSETS:  # "Latest event" links to the step of the launched run
        latest = _asset_node(page, name).locator(f'a[href^="/runs/{launched_run.run_id}"]')
        expect(latest).to_have_count(1)
    ui.shot("asset-graph-after-run")
    graph = ui.shot("asset-graph-nodes", clip=_around(_asset_nodes(page), margin=40))
    target = os.environ.get(README_SCREENSHOT_ENV)
    if target:
        _write_readme_screenshot(graph, REPO / target)


def _around(nodes: Locator, margin: float) -> FloatRect:
    """The rectangle holding every node (and the kind tags under them), plus a margin."""
    boxes = [box for box in (node.bounding_box() for node in nodes.all()) if box is not None]
    assert boxes, "no asset node has a bounding box"
    left = min(b["x"] for b in boxes) - margin
    top = min(b["y"] for b in boxes) - margin
    right = max(b["x"] + b["width"] for b in boxes) + margin
    bottom = max(b["y"] + b["height"] for b in boxes) + margin
    return {"x": max(left, 0), "y": max(top, 0), "width": right - left, "height": bottom - top}


def _write_readme_screenshot(source: Path, target: Path) -> None:
    """A modest PNG for the README: the graph's nodes, palette-quantized."""
    with Image.open(source) as img:
        small = img.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        target.parent.mkdir(parents=True, exist_ok=True)
        small.save(target, optimize=True)


def test_thumbnails_materialization_shows_the_contact_sheet(
    launched_run: LaunchedRun, ui: Session, ui_server: UIServer
) -> None:
    page = ui.page
    page.goto(f"/assets/image_thumbnails?view=events&partition={PARTITION}")
    expect(page.get_by_text(f"materialized in run {launched_run.run_id[:8]}").first).to_be_visible()
    row = page.locator("tr", has=page.get_by_text("contact_sheet", exact=True))
    expect(row).to_have_count(1)
    ui.shot("thumbnails-materialization", full_page=True)
    # Markdown metadata sits behind a link in the metadata table and opens in a dialog.
    row.get_by_text("Show Markdown").click()
    image = page.get_by_role("dialog").locator("img[alt='contact sheet']")
    expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    ui.shot("contact-sheet")
    src = image.get_attribute("src")
    assert src is not None and src.startswith("data:image/png;base64,"), src[:40] if src else src
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as png:
        assert list(png.size) == natural, (png.size, natural)
    assert natural[0] > 0 and natural[1] > 0
    written = sorted((ui_server.data / "thumbnails" / PARTITION).glob("*.png"))
    assert len(written) == PER_DAY + 1, written  # the NaN-beam image gets a thumbnail too


def test_image_qa_shows_its_check_results(launched_run: LaunchedRun, ui: Session) -> None:
    page = ui.page
    page.goto("/assets/image_qa?view=checks")
    rows = page.locator("[class*='checkRow']")
    expect(rows).to_have_count(len(CHECKS))
    for check, status in CHECKS.items():
        row = rows.filter(has=page.locator(f'[title="{check}"]'))
        expect(row).to_contain_text(status)
    ui.shot("image-qa-checks", full_page=True)
    rows.filter(has=page.locator('[title="beam_present_on_all_images"]')).click()
    expect(
        page.get_by_text(f"1 of {PER_DAY + 1} images have no restoring beam").first
    ).to_be_visible()
    ui.shot("image-qa-beam-check", full_page=True)


def test_every_readme_run_succeeded_and_is_listed_under_its_job(
    ui: Session, ui_server: UIServer
) -> None:
    """`make demo`, `dg launch` and the daemon's backfill: no run failed to start, and the job's
    page lists each of them (the CLI's in-process runs included)."""
    import dagster as dg

    runs = [r for r in ui_server.instance().get_runs() if r.job_name == "daily_products_job"]
    assert len(runs) >= 2 * len(DAYS) + 1, [r.run_id for r in runs]
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, [
        (r.run_id[:8], r.status) for r in runs
    ]
    page = ui.page
    page.goto("/locations/contimg/jobs/daily_products_job/runs")
    for run in runs:
        expect(page.locator(f'a[href*="/runs/{run.run_id}"]').first).to_be_visible()
    expect(page.get_by_text("Failure", exact=True)).to_have_count(0)
    ui.shot("job-runs", full_page=True)


def test_each_day_shows_its_own_numbers_and_per_image_grades(ui: Session) -> None:
    page = ui.page
    for day in DAYS:
        images = PER_DAY + 1 if day == PARTITION else PER_DAY  # the NaN-beam file is day 1's
        page.goto(f"/assets/image_qa?view=events&partition={day}")
        expect(page.get_by_text(f"Partition {day} materialized in run").first).to_be_visible()
        row = page.locator("tr", has=page.get_by_text("images", exact=True)).first
        expect(row.locator("td").nth(1)).to_have_text(str(images))
        table = page.locator("tr", has=page.get_by_text("images_by_grade", exact=True)).first
        expect(table).to_contain_text(f"{day}T02:00:00_dec+")  # the day's own images
        if day == PARTITION:
            # worst first: the warn image and its reason lead the table
            expect(table.locator("tr").nth(1)).to_contain_text("broken_nan_beam.fits")
            expect(table.locator("tr").nth(1)).to_contain_text("warn")
            expect(table).to_contain_text("beam missing")
            table.scroll_into_view_if_needed()
            ui.shot(f"image-qa-{day}")
        else:
            expect(table).not_to_contain_text("warn")


def test_each_day_keeps_its_own_check_result(ui: Session) -> None:
    """Day 1 has an image without a beam, days 2 and 3 have none: the failure stays visible
    after the later days passed."""
    page = ui.page
    page.goto("/assets/image_qa?view=checks&checkDetail=beam_present_on_all_images")
    # The check's own tabs (Overview, Execution history, ..., Partitions) follow the asset's.
    expect(page.get_by_text("Execution history", exact=True)).to_be_visible()
    page.get_by_text("Partitions", exact=True).last.click()
    expect(page.get_by_text(re.compile(r"^Failed\s*\(1\)$"))).to_be_visible()
    expect(page.get_by_text(re.compile(rf"^Passed\s*\({len(DAYS) - 1}\)$"))).to_be_visible()
    ui.shot("beam-check-partitions")
