"""`contimg metrics serve` and `contimg metrics dump`: the Prometheus exposition of contimg.

Dagster's webserver and daemon expose no `/metrics`; this command closes that gap for this code
location (docs/ops/metrics.md). It binds to loopback by default: put a reverse proxy or
Prometheus on the same host in front of it rather than exposing it.

The server is prometheus_client's threading WSGI server (a daemon thread per request), with a
listen backlog for bursts of scrapers (`LISTEN_BACKLOG`; the library's default is 5, beyond which
connections wait for SYN retries) and a socket timeout (`IDLE_TIMEOUT_S`), so a client that
connects and says nothing cannot hold a thread forever. A client that hangs up mid-answer is
normal and is not reported; any other error serving a request is one log line, no traceback.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import ServerHandler, WSGIServer

import click

from pipeline_defs.cli.output import USAGE_STATUS, fail
from resources.metrics_bootstrap import ensure_multiprocess_dir

if TYPE_CHECKING:
    from pipeline_defs.monitoring.exporter import DagsterCatalog, Exporter

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INDEX = b"""<html><head><title>contimg metrics</title></head>
<body><h1>contimg metrics</h1><p><a href="/metrics">/metrics</a></p></body></html>
"""
#: Connections the kernel queues before `accept`: a burst of scrapers (or a load balancer's
#: health checks) must not overflow it (socketserver's default is 5).
LISTEN_BACKLOG = 256
#: Seconds a connection may stay silent (request not sent, answer not read) before it is closed.
IDLE_TIMEOUT_S = 10.0
#: What a client does to a connection that the server must not report: hang up, time out.
CLIENT_GONE = (ConnectionError, TimeoutError)


def load_code_location_catalog() -> DagsterCatalog:
    """The catalog of the code location for the Dagster gauges (imported only when scraped)."""
    from pipeline_defs.definitions import build_definitions
    from pipeline_defs.monitoring.exporter import DagsterCatalog

    return DagsterCatalog.from_definitions(build_definitions())


def metrics_app(exporter: Exporter) -> Callable[..., Iterable[bytes]]:
    """The WSGI application: GET /metrics is one (possibly shared) rendering of the exporter."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            body, content_type, status = exporter.render(), CONTENT_TYPE, "200 OK"
        elif path == "/":
            body, content_type, status = INDEX, "text/html; charset=utf-8", "200 OK"
        else:
            body, content_type = b"only /metrics is served here\n", "text/plain; charset=utf-8"
            status = "404 Not Found"
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


def _server_class(host: str) -> type[WSGIServer]:
    """The server class, built on first use: importing prometheus_client fixes this process's
    metrics mode, which `ensure_multiprocess_dir()` must decide first (docs/ops/metrics.md)."""
    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

    class _OneLineServerHandler(ServerHandler):
        """wsgiref's handler, but an application error is one log line instead of a traceback."""

        def log_exception(self, exc_info: Any) -> None:
            exc = exc_info[1]
            log.warning("metrics: error answering a scrape: %s: %s", type(exc).__name__, exc)
            log.debug("metrics: scrape error", exc_info=exc_info)

    class _RequestHandler(_SilentHandler):
        """Silent per-request logging (prometheus_client's), the socket timeout, one-line errors."""

        timeout = IDLE_TIMEOUT_S

        def handle(self) -> None:
            # As WSGIRequestHandler.handle, with the handler class above.
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline, self.request_version, self.command = "", "", ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
            handler = _OneLineServerHandler(
                self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
            )
            handler.request_handler = self  # type: ignore[attr-defined]
            handler.run(self.server.get_app())  # type: ignore[attr-defined]

    class MetricsServer(ThreadingWSGIServer):
        """prometheus_client's threading WSGI server with a real backlog and quiet client errors."""

        request_queue_size = LISTEN_BACKLOG

        def handle_error(self, request: Any, client_address: Any) -> None:
            exc = sys.exc_info()[1]
            if isinstance(exc, CLIENT_GONE):
                log.debug("metrics: client %s went away: %s", client_address, exc)
                return
            log.warning(
                "metrics: error serving %s: %s: %s", client_address, type(exc).__name__, exc
            )

    class Server(MetricsServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    Server.handler_class = _RequestHandler  # type: ignore[attr-defined]
    return Server


def make_server(host: str, port: int, exporter: Exporter | None = None) -> WSGIServer:
    """An HTTP server answering GET /metrics, listening on host:port (0: any free port)."""
    if exporter is None:
        exporter = build_serve_exporter(ensure_multiprocess_dir())

    server_class = _server_class(host)
    server = server_class((host, port), server_class.handler_class)  # type: ignore[attr-defined]
    server.set_app(metrics_app(exporter))
    return server


def build_serve_exporter(directory: Path) -> Exporter:
    """The exporter `serve` uses: every process's files in `directory`, gauges cached."""
    from pipeline_defs.monitoring.exporter import ExporterSettings, build_exporter

    # The directory is read even when this process could not write to it (read-only mount:
    # its own values stay in memory, the others' files are still there to sum).
    settings = replace(ExporterSettings.from_env(), multiprocess_dir=directory)
    return build_exporter(settings, catalog_factory=load_code_location_catalog)


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
    from resources.errors import ConfigurationError

    directory = ensure_multiprocess_dir()
    try:
        exporter = build_serve_exporter(directory)
    except ConfigurationError as exc:
        fail(exc, USAGE_STATUS)
    try:
        server = make_server(host, port, exporter)
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
