"""taskiq's command line, logging JSON lines from its first one: ``debtflow worker``
becomes ``python -m debtflow_adapters.taskiq.command worker …``.

taskiq's worker command is a parent process that starts the worker processes and logs
their starts and stops itself; with its own logging it writes those as plain text, and
``--no-configure-logging`` alone leaves them to the first root-logger call. Configured
here first, every line of every process is JSON, as the API's are.
"""

from __future__ import annotations

from taskiq.__main__ import main as taskiq_main

from debtflow_adapters.logs import configure_logging
from debtflow_adapters.settings import Settings


def main() -> None:
    configure_logging(Settings.from_env().log_level)
    taskiq_main()


if __name__ == "__main__":
    main()
