"""DebtFlow's configuration: the ``DEBTFLOW_*`` environment variables, read and checked once.

Every entrypoint builds one :class:`Settings` with :meth:`Settings.from_env` before it does
anything else, so a bad value stops the process at start with one message that names every
offending variable, rather than failing half-way through the first request.

Secrets (passwords inside URLs) never appear in a message or a ``repr``: values are shown
through :func:`redact`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from debtflow_adapters.persistence import normalize_url
from debtflow_core.domain.export import ExportKind
from debtflow_core.use_cases.audit_log import MINIMUM_RETENTION_MONTHS

MEMORY_URL = "memory://"
"""The database URL that selects the in-memory adapters: nothing outlives the process."""

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///debtflow.db"
"""A SQLite file in the working directory, so that DebtFlow runs with no server at all."""

DEFAULT_STORAGE_URL = "file:debtflow-storage"
"""A directory beside the SQLite file for placement-file backups and exports."""

DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024
"""256 MiB: about a million placement rows."""

_STORAGE_SCHEMES = ("file", "s3", "memory")

T = TypeVar("T")

_REDIS_SCHEMES = frozenset({"redis", "rediss"})
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>\S*)")
_PASSWORD_PARAMETER = re.compile(r"(?i)\b(password|passwd|pwd)=[^\s&;]*")


class SettingsError(Exception):
    """One or more ``DEBTFLOW_*`` variables are invalid; ``problems`` has one line for each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


def redact(text: str) -> str:
    """``text`` with every password in it replaced by ``***``.

    It covers the user-info of each URL in the text (a URL ends at whitespace; its
    user-info at its last ``@``, so a password holding ``/`` or ``@`` is hidden whole) and
    ``password=…`` parameters. It would rather hide too much than too little.
    """
    return _URL.sub(_redact_url, _PASSWORD_PARAMETER.sub(r"\1=***", text))


def _redact_url(match: re.Match[str]) -> str:
    user_info, at, rest = match["rest"].rpartition("@")
    if not at or ":" not in user_info:
        return match[0]
    return f"{match['scheme']}{user_info.partition(':')[0]}:***@{rest}"


@dataclass(frozen=True, kw_only=True, repr=False)
class Settings:
    """The validated configuration. Build it with :meth:`from_env`.

    - ``database_url``: a SQLAlchemy async URL (``sqlite+aiosqlite://`` or
      ``postgresql+psycopg://``), or :data:`MEMORY_URL` for the in-memory adapters.
    - ``redis_url``: ``None`` keeps idempotency keys and rate limits in
      the process; a ``redis://`` or ``rediss://`` URL shares them between processes.
    - ``jwt_secret``: the HS256 key of access tokens, at least 32 bytes. Unset, a random one
      is made (``jwt_secret_generated``): tokens then die with the process.
    - ``log_level``; ``cors_origins`` (none: CORS off); ``http_host``, ``http_port`` and
      ``http_workers`` for ``debtflow serve``.
    - ``forwarded_allow_ips``: the addresses and networks of the reverse proxies whose
      ``X-Forwarded-For`` and ``X-Forwarded-Proto`` ``debtflow serve`` believes, or
      ``("*",)`` for any peer; by default only this machine's (loopback), none when empty.
    - ``gateway_failure_threshold`` failures in a row open the payment gateway's circuit
      breaker for ``gateway_reset_seconds``.
    - ``broker_url``: the Redis queue between the API and ``debtflow worker``; ``None`` runs
      the background tasks inside the serving process instead (the embedded default).
    - ``settle_after_seconds``: how long a payment or refund stays pending before the scheduled
      recovery asks the gateway about it.
    - ``stripe_api_key`` (``None``: no Stripe processor can be added), ``stripe_api_base``
      (an emulator or proxy instead of ``https://api.stripe.com``) and
      ``stripe_webhook_secret`` (``None``: ``POST /v1/webhooks/stripe`` answers 404).
    - ``storage_url``: where placement-file backups and exports go: ``file:DIR`` or
      ``file:///ABSOLUTE/DIR`` (a local directory), ``s3://BUCKET`` (with ``s3_region``,
      ``s3_endpoint_url`` for MinIO or another S3-compatible store, and ``s3_access_key_id``
      with ``s3_secret_access_key``, or neither to let boto3 find credentials), or
      ``memory://``.
    - ``public_url``: the API's address as clients reach it, for the download links it
      signs itself (local storage); ``None``: ``listen_url``.
      ``link_secret`` signs them; ``None`` derives one from ``jwt_secret``.
    - ``sources_root``: the directory under which local file sources may read; ``None``
      refuses local sources. ``sftp_timeout_seconds`` bounds each step of an SFTP session.
    - ``max_upload_bytes``: the largest request ``POST /v1/imports`` accepts (413 beyond).
    - ``export_retention_days``: how long exports (records and files) are kept;
      ``export_link_seconds``: how long an export's download link lives;
      ``nightly_exports``: the report kinds exported every night for every agency.
    - ``in_process_scheduler``: run the schedule (maintenance, settlement, file-source
      polls) inside the serving process; only without ``broker_url`` and with one server
      worker (checked by ``debtflow serve`` and ``demo``, whose ``--workers`` wins over
      ``http_workers``). They turn it on in that case.
    - ``audit_retention_months``: ``None`` keeps the audit log for ever; otherwise, on
      PostgreSQL, its monthly partitions older than this (36 months at least) are detached.
    - ``worker_metrics_host`` and ``worker_metrics_port``: where ``debtflow worker`` serves
      its Prometheus metrics.
    """

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    jwt_secret_generated: bool = True
    log_level: str = "info"
    cors_origins: tuple[str, ...] = ()
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    http_workers: int = 1
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    gateway_failure_threshold: int = 5
    gateway_reset_seconds: int = 30
    broker_url: str | None = None
    settle_after_seconds: int = 300
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None
    storage_url: str = DEFAULT_STORAGE_URL
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    public_url: str | None = None
    link_secret: str | None = None
    sources_root: str | None = None
    sftp_timeout_seconds: int = 15
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    export_retention_days: int = 30
    export_link_seconds: int = 900
    nightly_exports: tuple[ExportKind, ...] = ()
    audit_retention_months: int | None = None
    in_process_scheduler: bool = False
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9100

    @property
    def in_memory(self) -> bool:
        return self.database_url == MEMORY_URL

    @property
    def link_signing_key(self) -> bytes:
        """The key of signed download links: ``link_secret``, or one derived from the JWT
        secret (so every process that shares that secret signs alike)."""
        if self.link_secret is not None:
            return self.link_secret.encode()
        return hmac.new(self.jwt_secret.encode(), b"debtflow signed links", "sha256").digest()

    @property
    def listen_url(self) -> str:
        """Where ``debtflow serve`` listens, as a URL: an IPv6 host goes in brackets."""
        host = f"[{self.http_host}]" if ":" in self.http_host else self.http_host
        return f"http://{host}:{self.http_port}"

    @property
    def api_base_url(self) -> str:
        return self.public_url or self.listen_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read and check the variables; raise :class:`SettingsError` listing every bad one.

        A variable that is set but empty is an error rather than "unset": an empty
        ``DEBTFLOW_DATABASE_URL`` is usually a secret that failed to load, and falling back
        to a local SQLite file would then hide it.
        """
        problems: list[str] = []

        def read(name: str, parse: Callable[[str], T]) -> T | None:
            raw = environ.get(name)
            if raw is None:
                return None
            try:
                return parse(raw.strip())
            except ValueError as error:
                problems.append(f"{name}: {error}")
                return None

        values = {
            name: value
            for name, variable, parse in [
                ("database_url", "DEBTFLOW_DATABASE_URL", _database_url),
                ("redis_url", "DEBTFLOW_REDIS_URL", _redis_url),
                ("jwt_secret", "DEBTFLOW_JWT_SECRET", _jwt_secret),
                ("log_level", "DEBTFLOW_LOG_LEVEL", _log_level),
                ("cors_origins", "DEBTFLOW_CORS_ORIGINS", _origins),
                ("http_host", "DEBTFLOW_HTTP_HOST", _host),
                ("http_port", "DEBTFLOW_HTTP_PORT", parse_port),
                ("http_workers", "DEBTFLOW_HTTP_WORKERS", parse_workers),
                (
                    "forwarded_allow_ips",
                    "DEBTFLOW_FORWARDED_ALLOW_IPS",
                    parse_forwarded_allow_ips,
                ),
                (
                    "gateway_failure_threshold",
                    "DEBTFLOW_GATEWAY_FAILURE_THRESHOLD",
                    whole_number(1, 1000),
                ),
                ("gateway_reset_seconds", "DEBTFLOW_GATEWAY_RESET_SECONDS", whole_number(1, 3600)),
                ("broker_url", "DEBTFLOW_BROKER_URL", _redis_url),
                (
                    "settle_after_seconds",
                    "DEBTFLOW_SETTLE_AFTER_SECONDS",
                    whole_number(1, 86400),
                ),
                ("stripe_api_key", "DEBTFLOW_STRIPE_API_KEY", _secret("a Stripe API key")),
                ("stripe_api_base", "DEBTFLOW_STRIPE_API_BASE", _http_url),
                (
                    "stripe_webhook_secret",
                    "DEBTFLOW_STRIPE_WEBHOOK_SECRET",
                    _secret("a webhook signing secret"),
                ),
                ("storage_url", "DEBTFLOW_STORAGE_URL", _storage_url),
                ("s3_region", "DEBTFLOW_S3_REGION", _host),
                ("s3_endpoint_url", "DEBTFLOW_S3_ENDPOINT_URL", _http_url),
                ("s3_access_key_id", "DEBTFLOW_S3_ACCESS_KEY_ID", _secret("an access key id")),
                (
                    "s3_secret_access_key",
                    "DEBTFLOW_S3_SECRET_ACCESS_KEY",
                    _secret("a secret access key"),
                ),
                ("public_url", "DEBTFLOW_PUBLIC_URL", _http_url),
                ("link_secret", "DEBTFLOW_LINK_SECRET", _jwt_secret),
                ("sources_root", "DEBTFLOW_SOURCES_ROOT", _directory),
                ("sftp_timeout_seconds", "DEBTFLOW_SFTP_TIMEOUT_SECONDS", whole_number(1, 600)),
                ("max_upload_bytes", "DEBTFLOW_MAX_UPLOAD_BYTES", whole_number(1024, 2**40)),
                (
                    "export_retention_days",
                    "DEBTFLOW_EXPORT_RETENTION_DAYS",
                    whole_number(1, 3650),
                ),
                # A link lives at most seven days, S3's limit for presigned URLs.
                ("export_link_seconds", "DEBTFLOW_EXPORT_LINK_SECONDS", whole_number(1, 604800)),
                ("nightly_exports", "DEBTFLOW_NIGHTLY_EXPORTS", _export_kinds),
                (
                    "audit_retention_months",
                    "DEBTFLOW_AUDIT_RETENTION_MONTHS",
                    whole_number(MINIMUM_RETENTION_MONTHS, 1200),
                ),
                ("in_process_scheduler", "DEBTFLOW_IN_PROCESS_SCHEDULER", parse_switch),
                ("worker_metrics_host", "DEBTFLOW_WORKER_METRICS_HOST", _host),
                ("worker_metrics_port", "DEBTFLOW_WORKER_METRICS_PORT", parse_port),
            ]
            if (value := read(variable, parse)) is not None
        }
        if ("s3_access_key_id" in values) != ("s3_secret_access_key" in values):
            problems.append(
                "DEBTFLOW_S3_ACCESS_KEY_ID and DEBTFLOW_S3_SECRET_ACCESS_KEY: set both or neither"
            )
        if values.get("in_process_scheduler"):
            # One worker here: the count is judged by `debtflow serve` and `demo`, once
            # their --workers flag has won over DEBTFLOW_HTTP_WORKERS.
            problems.extend(scheduler_conflicts(values.get("broker_url"), http_workers=1))
        if problems:
            raise SettingsError(problems)
        return cls(**values, jwt_secret_generated="jwt_secret" not in values)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{item.name}={_shown(item.name, getattr(self, item.name))}"
            for item in fields(self)
            if item.name != "jwt_secret_generated"
        )
        return f"Settings({shown})"


_SECRETS = frozenset(
    {
        "jwt_secret",
        "stripe_api_key",
        "stripe_webhook_secret",
        "s3_access_key_id",
        "s3_secret_access_key",
        "link_secret",
    }
)
_URLS = frozenset({"database_url", "redis_url", "broker_url"})


def _shown(name: str, value: object) -> str:
    """A setting as ``repr`` shows it: secrets hidden, passwords in URLs redacted."""
    if value is None:
        return "None"
    if name in _SECRETS:
        return "'***'"
    if name in _URLS:
        return repr(redact(str(value)))
    return repr(value)


def _database_url(raw: str) -> str:
    if not raw:
        raise ValueError("is empty; unset it to use the default SQLite file")
    if raw == MEMORY_URL:
        return raw
    try:
        url = normalize_url(raw)
    except ValueError as error:
        raise ValueError(
            f"{redact(raw)!r} is not a database URL: {error}, or {MEMORY_URL}"
        ) from None
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and _at_sign_unencoded(raw, parsed.host):
        raise ValueError(
            "an '@' in its user name, password or database name is not percent-encoded, so "
            "part of the password would be taken for the host (and shown in every connection "
            "error); write each such '@' as %40"
        )
    # SQLite's own in-memory database lives per connection: every unit of work would see
    # an empty, unmigrated one.
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(
            f"{redact(raw)!r} names no SQLite file: give one (sqlite:///debtflow.db), "
            f"or use {MEMORY_URL} for an in-memory store"
        )
    return url


def _at_sign_unencoded(raw: str, host: str | None) -> bool:
    """Whether an '@' of the user-info was left as it is: SQLAlchemy ends the password at
    its first '@' (redis-py, at its last). More than one before the query, or one in the
    host SQLAlchemy found (a '?' in the password hides the first from that count)."""
    return raw.partition("://")[2].partition("?")[0].count("@") > 1 or "@" in (host or "")


def _redis_url(raw: str) -> str:
    if not raw:
        raise ValueError("is empty; unset it to keep this state in the process")
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises ValueError unless the port is a number in 0-65535
    except ValueError as error:
        raise ValueError(f"{redact(raw)!r} is not a Redis URL: {error}") from None
    # redis-py takes a database that is not a number for database 0, where another
    # setting's data may be.
    database = parts.path.strip("/")
    numbered = not database or (database.isascii() and database.isdigit())
    if parts.scheme not in _REDIS_SCHEMES or not parts.hostname or not numbered:
        raise ValueError(
            f"{redact(raw)!r} is not a Redis URL: use redis://HOST[:PORT][/DB] or rediss://…"
            " (DB a number)"
        )
    return raw


def _secret(what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw or any(c.isspace() for c in raw):
            raise ValueError(f"is not {what}: it is empty or holds spaces; unset it if unused")
        return raw

    return parse


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{redact(raw)!r} is not an http:// or https:// URL")
    return raw.rstrip("/")


def _storage_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in _STORAGE_SCHEMES or (parts.scheme == "s3" and not parts.netloc):
        raise ValueError(
            f"{redact(raw)!r} is not a storage URL: use file:DIR, file:///ABSOLUTE/DIR,"
            " s3://BUCKET or memory://"
        )
    if parts.scheme == "s3" and parts.path.strip("/"):
        raise ValueError(
            f"{redact(raw)!r} names a path in the bucket: keys are stored from the bucket's"
            " root, so use s3://BUCKET (a bucket of DebtFlow's own)"
        )
    if parts.scheme == "file" and not (parts.netloc + parts.path):
        raise ValueError(f"{raw!r} names no directory: use file:DIR or file:///ABSOLUTE/DIR")
    return raw


def _directory(raw: str) -> str:
    if not os.path.isdir(raw):
        raise ValueError(f"{raw!r} is not a directory")
    return raw


def _export_kinds(raw: str) -> tuple[ExportKind, ...]:
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        raise ValueError("names no report kind; unset it to export none")
    unknown = [name for name in names if name not in {kind.value for kind in ExportKind}]
    if unknown:
        raise ValueError(
            f"{', '.join(map(repr, unknown))}: not a report kind; use a comma-separated list of "
            f"{', '.join(ExportKind)}"
        )
    return tuple(dict.fromkeys(ExportKind(name) for name in names))


def _jwt_secret(raw: str) -> str:
    if len(raw.encode()) < 32:
        raise ValueError(
            "is shorter than 32 bytes; make one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'"
        )
    return raw


_LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_level(raw: str) -> str:
    if raw.lower() not in _LOG_LEVELS:
        raise ValueError(f"{raw!r} is not a log level; use one of {', '.join(_LOG_LEVELS)}")
    return raw.lower()


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not origins:
        raise ValueError("names no origin; unset it to keep CORS off")
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (
            parts.scheme not in ("http", "https") or not parts.netloc or parts.path
        ):
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com or *")
    return origins


def parse_forwarded_allow_ips(raw: str) -> tuple[str, ...]:
    """The comma-separated IP addresses and networks (``10.0.0.0/8``) of trusted proxies,
    or ``*`` alone for any peer; empty trusts none.

    Checked here because uvicorn takes an entry it cannot read as a literal host name that
    no peer's address ever equals: a typo would silently trust nobody, and ``*`` beside
    other entries is such a literal too.
    """
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    if "*" in entries and len(entries) > 1:
        raise ValueError("'*' trusts every peer, so it stands alone")
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry)  # an address is a network of one
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network like 10.0.0.0/8") from None
    return entries


def _host(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ValueError(f"{raw!r} is not a host name or address")
    return raw


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """A parser of whole numbers from ``low`` to ``high``, for variables and CLI flags."""

    def parse(raw: str) -> int:
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ValueError(f"{raw!r} is not a whole number from {low} to {high}")
        return int(raw)

    return parse


_SWITCHES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_switch(raw: str) -> bool:
    if raw.lower() not in _SWITCHES:
        raise ValueError(f"{raw!r} is not a switch; use true or false")
    return _SWITCHES[raw.lower()]


def scheduler_conflicts(broker_url: str | None, http_workers: int) -> list[str]:
    """Why the schedule may not run in the serving process: there must be exactly one
    scheduler, and with a broker it is ``debtflow scheduler``."""
    problems = []
    if broker_url is not None:
        problems.append(
            "DEBTFLOW_IN_PROCESS_SCHEDULER: not with DEBTFLOW_BROKER_URL; run exactly one "
            "'debtflow scheduler' instead"
        )
    if http_workers > 1:
        problems.append(
            f"DEBTFLOW_IN_PROCESS_SCHEDULER: not with {http_workers} server workers, each of "
            "which would send every scheduled job; serve with one worker"
        )
    return problems


parse_port = whole_number(1, 65535)
parse_workers = whole_number(1, 64)
