"""`contimg metrics serve` and `contimg metrics dump`: the Prometheus exposition of contimg.

Dagster's webserver and daemon expose no `/metrics`; this command closes that gap for this code
location (docs/ops/metrics.md). It binds to loopback by default: put a reverse proxy or
Prometheus on the same host in front of it rather than exposing it.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from pipeline_defs.cli.output import USAGE_STATUS, fail
from resources.metrics_bootstrap import ensure_multiprocess_dir

if TYPE_CHECKING:
    from pipeline_defs.monitoring.exporter import DagsterCatalog

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INDEX = b"""<html><head><title>contimg metrics</title></head>
<body><h1>contimg metrics</h1><p><a href="/metrics">/metrics</a></p></body></html>
"""


def load_code_location_catalog() -> DagsterCatalog:
    """The catalog of the code location for the Dagster gauges (imported only when scraped)."""
    from pipeline_defs.definitions import build_definitions
    from pipeline_defs.monitoring.exporter import DagsterCatalog

    return DagsterCatalog.from_definitions(build_definitions())


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering GET /metrics with one scrape per request."""
    from pipeline_defs.monitoring.exporter import build_exporter

    exporter = build_exporter(catalog_factory=load_code_location_catalog)

    class Handler(BaseHTTPRequestHandler):
        server_version = "contimg-metrics"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, content_type = exporter.render(), CONTENT_TYPE
            elif path == "/":
                body, content_type = INDEX, "text/html; charset=utf-8"
            else:
                self.send_error(404, "only /metrics is served here")
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


@click.group("metrics")
def metrics_group() -> None:
    """Prometheus metrics: aggregated over every contimg process, plus database and Dagster state."""


@metrics_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=9464,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on (0: any free port, printed at start).",
)
def serve(host: str, port: int) -> None:
    """Serve /metrics until SIGTERM or Ctrl-C."""
    directory = ensure_multiprocess_dir()
    try:
        server = make_server(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    # serve_forever runs in a thread: shutdown() must be called from another thread than the
    # one serving, and the main thread is the one that receives signals.
    worker = threading.Thread(target=server.serve_forever, name="contimg-metrics-http")
    worker.start()
    bound_host, bound_port = server.server_address[:2]
    click.echo(
        f"serving http://{bound_host}:{bound_port}/metrics (PROMETHEUS_MULTIPROC_DIR={directory})",
        err=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
        worker.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("stopped", err=True)


def _dagster_skipped_because() -> str | None:
    """Why the Dagster gauges cannot be read here (None: they can, or are switched off)."""
    from resources.settings import env_bool, env_raw

    if not env_bool("CONTIMG_METRICS_DAGSTER"):
        return None
    raw = env_raw("DAGSTER_HOME")
    if raw is None:
        return "DAGSTER_HOME is not set"
    if not Path(raw).expanduser().is_dir():
        # Dagster would refuse it, or (an empty directory) create its storage there: a dump
        # only reads.
        return f"DAGSTER_HOME {raw} is not a directory"
    return None


@metrics_group.command("dump")
def dump() -> None:
    """Print the exposition once (what a scrape would return) and exit.

    Read-only: metric files of the other processes are read where they are written
    (PROMETHEUS_MULTIPROC_DIR); without DAGSTER_HOME the Dagster gauges are left out and one
    line on stderr says so (CONTIMG_METRICS_DAGSTER=0 leaves them out silently).
    """
    from pipeline_defs.monitoring.exporter import ExporterSettings, render_metrics
    from resources.errors import ConfigurationError
    from resources.metrics_bootstrap import shared_multiprocess_dir

    try:
        settings = ExporterSettings.from_env()
        skipped = _dagster_skipped_because()
    except ConfigurationError as exc:
        fail(exc, USAGE_STATUS)
    # This process keeps its own values in memory (pipeline_defs.cli): read the others' files.
    settings = replace(
        settings,
        multiprocess_dir=shared_multiprocess_dir(),
        include_dagster=settings.include_dagster and skipped is None,
    )
    if skipped is not None:
        click.echo(
            f"warning: Dagster gauges skipped: {skipped} (set it to the instance's directory, "
            "or CONTIMG_METRICS_DAGSTER=0)",
            err=True,
        )
    click.echo(render_metrics(settings, catalog_factory=load_code_location_catalog), nl=False)


COMMANDS: list[click.Command] = [metrics_group]
