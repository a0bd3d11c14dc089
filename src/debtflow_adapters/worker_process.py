"""``debtflow worker``'s process: taskiq's worker processes, and their metrics endpoint.

``python -m debtflow_adapters.worker_process ARGS`` takes ``taskiq worker``'s arguments.
It prepares the metrics directory the worker processes share (see
:mod:`debtflow_adapters.prometheus.multiprocess`), serves the sum of their metrics on
``DEBTFLOW_WORKER_METRICS_HOST``:``DEBTFLOW_WORKER_METRICS_PORT`` from a thread of this,
the supervising process, then runs taskiq's process manager here (so signals reach it).

Logging is configured first, before taskiq's process manager logs its workers' starts and
stops: every line of every process is JSON, as the API's are (taskiq is told
``--no-configure-logging``).
"""

from __future__ import annotations

import shutil
import sys

from debtflow_adapters.logs import configure_logging
from debtflow_adapters.prometheus.multiprocess import prepare_multiprocess_dir
from debtflow_adapters.settings import Settings


def main(arguments: list[str]) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    directory = prepare_multiprocess_dir()
    try:
        # Imported only now that the directory is in the environment: prometheus-client
        # reads it on import, and taskiq forks its workers from this process.
        from prometheus_client import start_http_server
        from taskiq.cli.worker.args import WorkerArgs
        from taskiq.cli.worker.run import run_worker

        from debtflow_adapters.prometheus.exposition import scrape_registry

        try:
            server, _ = start_http_server(
                settings.worker_metrics_port,
                settings.worker_metrics_host,
                registry=scrape_registry(),
            )
        except OSError as error:
            print(
                f"debtflow: error: cannot serve the worker's metrics on "
                f"{settings.worker_metrics_host}:{settings.worker_metrics_port}: "
                f"{error.strerror or error} (set DEBTFLOW_WORKER_METRICS_PORT)",
                file=sys.stderr,
            )
            return 1
        try:
            return run_worker(WorkerArgs.from_cli(arguments)) or 0
        finally:
            server.shutdown()
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
