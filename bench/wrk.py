"""Running wrk and reading its report: throughput and the latency percentiles."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_SECONDS = 10
"""How long wrk waits for an answer before it counts a timeout (an error, failing the run);
its default of 2 s is shorter than a saturated server's worst answers."""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = r"^\s+{}%\s+([\d.]+)(us|ms|s|m)\s*$"
_REQUESTS = re.compile(r"^\s+(\d+) requests in", re.MULTILINE)
# wrk counts these but still reports a throughput: a run with any of them measured errors.
_FAILURES = re.compile(r"^\s+(Non-2xx or 3xx responses|Socket errors):.*$", re.MULTILINE)


@dataclass(frozen=True)
class Load:
    """How hard wrk pushes: ``connections`` kept busy by ``threads`` for ``duration`` s."""

    threads: int
    connections: int
    duration: int
    script: Path | None = None
    """A Lua script that makes each request (wrk's ``-s``), and its arguments."""
    script_args: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Result:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float


class WrkFailed(Exception):
    """wrk did not run, or some responses were errors (so the figures would flatter)."""


def command(url: str, load: Load, token: str | None = None) -> list[str]:
    """The wrk command line for ``url``, with a bearer token if one is given."""
    return [*_options(load), *_authorization(token), url, *_script_args(load)]


def printable(url: str, load: Load, *, authorized: bool) -> str:
    """The command as a shell line that reads the token from ``$TOKEN`` (a live credential
    has no place in a document)."""
    header = ' -H "Authorization: Bearer $TOKEN"' if authorized else ""
    return f"{shlex.join(_options(load))}{header} {shlex.join([url, *_script_args(load)])}"


def _options(load: Load) -> list[str]:
    script = [] if load.script is None else ["-s", str(load.script)]
    return [
        *("wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{load.duration}s"),
        *(*script, "--timeout", f"{TIMEOUT_SECONDS}s", "--latency"),
    ]


def _script_args(load: Load) -> list[str]:
    return ["--", *load.script_args] if load.script_args else []


def _authorization(token: str | None) -> list[str]:
    return [] if token is None else ["-H", f"Authorization: Bearer {token}"]


def run(url: str, load: Load, token: str | None = None) -> Result:
    """Run wrk against ``url`` and return what it measured; raise :class:`WrkFailed`
    if any response was an error."""
    completed = subprocess.run(command(url, load, token), capture_output=True, text=True)
    if completed.returncode != 0:
        raise WrkFailed(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return parse(completed.stdout)


def parse(report: str) -> Result:
    """The figures of a ``wrk --latency`` report."""
    if failures := _FAILURES.findall(report):
        raise WrkFailed(f"{', '.join(failures)} in:\n{report}")
    throughput = _REQUESTS_PER_SECOND.search(report)
    requests = _REQUESTS.search(report)
    if throughput is None or requests is None:
        raise WrkFailed(f"not a wrk report:\n{report}")
    return Result(
        requests=int(requests.group(1)),
        requests_per_second=float(throughput.group(1)),
        p50_ms=_percentile(report, 50),
        p99_ms=_percentile(report, 99),
    )


def _percentile(report: str, percent: int) -> float:
    match = re.search(_PERCENTILE.format(percent), report, re.MULTILINE)
    if match is None:
        raise WrkFailed(f"no {percent}% latency in (was --latency given?):\n{report}")
    value, unit = match.groups()
    return float(value) * _UNITS[unit]
