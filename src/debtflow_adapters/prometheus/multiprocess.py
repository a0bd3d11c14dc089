"""The directory in which the processes of one server or worker keep their metrics.

Standard library only, on purpose: prometheus-client decides when it is first imported
whether values go to that directory, and taskiq forks its workers from the process that
prepares it, so it must be set before the library is imported there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path | None:
    """Make sure the processes about to start share a clean metrics directory.

    A directory given in ``PROMETHEUS_MULTIPROC_DIR`` is emptied of the files an earlier
    run left (their counts would be added to this run's); without one, a fresh temporary
    directory is made and put in the environment for the child processes to inherit, and
    returned for the caller to remove when they have stopped. Call it before any metric
    is imported in a process that records them.
    """
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    directory = Path(tempfile.mkdtemp(prefix="debtflow-metrics-"))
    os.environ[MULTIPROC_DIR] = str(directory)
    return directory
