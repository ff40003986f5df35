"""`delivery-gateway serve`: log set-up, listening socket, banner and warnings, then the gateway until SIGTERM.

Never prints a credential (the banner masks and counts), and never starts serving after a start-up problem it
can name in one line (StartupError).
"""

from __future__ import annotations

import logging

from delivery_gateway.app import create_app
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ops.banner import StartupReport, build_report
from delivery_gateway.ops.environment import environment_warnings
from delivery_gateway.ops.logs import configure_logging
from delivery_gateway.ops.runner import bind_socket, run_gateway, run_served, served_config

log = logging.getLogger("delivery_gateway.startup")


def emit_report(report: StartupReport, logger: logging.Logger = log) -> None:
    """The banner as one record (an aligned block in text, its fields as keys in JSON), then one WARNING each."""
    logger.info(report.title, extra={"fields": report.fields(), "text_detail": report.text()})
    for warning in report.warnings:
        logger.warning(warning)


def serve(settings: Settings, host: str, port: int) -> None:
    """Runs until SIGTERM (returns) or Ctrl-C (KeyboardInterrupt); raises StartupError for a one-line failure."""
    configure_logging(settings.log_format, settings.log_level)
    sock = bind_socket(host, port)
    port = sock.getsockname()[1]  # the one the system chose, for --port 0
    try:
        app = create_app(settings)
        config = served_config(app, settings)
        report = build_report(settings, host=host, port=port)
        report.warnings.extend(environment_warnings())
        emit_report(report)
    except BaseException:
        sock.close()
        raise
    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def ready() -> None:
        log.info("ready on %s (GraphQL at %s/graphql)", base, base, extra={"fields": {"url": base}})

    run_served(run_gateway(config, app.state.gateway, sock, on_ready=ready))
