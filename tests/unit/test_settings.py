"""Settings come from ``DEBTFLOW_*`` variables, are checked at once, and keep secrets hidden."""

from __future__ import annotations

import pytest
from redis.connection import parse_url

from debtflow_adapters.settings import (
    DEFAULT_DATABASE_URL,
    MEMORY_URL,
    Settings,
    SettingsError,
    redact,
)
from debtflow_core.domain.export import ExportKind


def test_defaults_need_no_variable_at_all() -> None:
    settings = Settings.from_env({})

    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///debtflow.db"
    assert settings.redis_url is None
    assert not settings.in_memory


def test_other_variables_are_ignored() -> None:
    settings = Settings.from_env({"DATABASE_URL": "nonsense", "HOME": "/root"})
    assert settings == Settings(jwt_secret=settings.jwt_secret)


def test_without_a_jwt_secret_each_process_makes_its_own() -> None:
    one, two = Settings.from_env({}), Settings.from_env({})
    assert one.jwt_secret_generated
    assert one.jwt_secret != two.jwt_secret
    assert len(one.jwt_secret) >= 32
    given = Settings.from_env({"DEBTFLOW_JWT_SECRET": "k" * 40})
    assert (given.jwt_secret, given.jwt_secret_generated) == ("k" * 40, False)
    assert "k" * 40 not in repr(given)


def test_http_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "DEBTFLOW_HTTP_HOST": "0.0.0.0",
            "DEBTFLOW_HTTP_PORT": "8080",
            "DEBTFLOW_HTTP_WORKERS": "4",
            "DEBTFLOW_LOG_LEVEL": "WARNING",
            "DEBTFLOW_CORS_ORIGINS": "https://app.example.com, http://localhost:3000",
        }
    )
    assert (settings.http_host, settings.http_port, settings.http_workers) == ("0.0.0.0", 8080, 4)
    assert settings.log_level == "warning"
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:3000")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "DEBTFLOW_HTTP_PORT": "eighty",
                "DEBTFLOW_HTTP_WORKERS": "0",
                "DEBTFLOW_LOG_LEVEL": "loud",
                "DEBTFLOW_CORS_ORIGINS": "app.example.com",
                "DEBTFLOW_JWT_SECRET": "tiny-s3cret",
            }
        )
    named = {problem.split(":")[0] for problem in caught.value.problems}
    assert named == {
        "DEBTFLOW_HTTP_PORT",
        "DEBTFLOW_HTTP_WORKERS",
        "DEBTFLOW_LOG_LEVEL",
        "DEBTFLOW_CORS_ORIGINS",
        "DEBTFLOW_JWT_SECRET",
    }
    assert "tiny-s3cret" not in str(caught.value)


def test_only_proxies_on_this_machine_are_believed_unless_configured() -> None:
    assert Settings.from_env({}).forwarded_allow_ips == ("127.0.0.1", "::1")
    for raw, expected in [
        ("10.0.0.0/8, 192.168.1.7,fd00::/8", ("10.0.0.0/8", "192.168.1.7", "fd00::/8")),
        ("*", ("*",)),
        ("", ()),
    ]:
        settings = Settings.from_env({"DEBTFLOW_FORWARDED_ALLOW_IPS": raw})
        assert settings.forwarded_allow_ips == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("lb.internal", "'lb.internal' is not an IP address or network like 10.0.0.0/8"),
        ("10.0.0.1/8", "'10.0.0.1/8' is not an IP address or network"),
        ("10.0.0.0/8,*", "'*' trusts every peer, so it stands alone"),
    ],
)
def test_proxies_uvicorn_would_silently_ignore_are_refused(value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DEBTFLOW_FORWARDED_ALLOW_IPS": value})

    [problem] = raised.value.problems
    assert problem.startswith(f"DEBTFLOW_FORWARDED_ALLOW_IPS: {reason}")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/debtflow.db", "sqlite+aiosqlite:///var/debtflow.db"),
        ("sqlite+aiosqlite:///debtflow.db", "sqlite+aiosqlite:///debtflow.db"),
        ("postgresql://app@db:5432/debtflow", "postgresql+psycopg://app@db:5432/debtflow"),
        ("postgres://app:s3cret@db/debtflow", "postgresql+psycopg://app:s3cret@db/debtflow"),
        ("  postgresql+psycopg://app@db/debtflow\n", "postgresql+psycopg://app@db/debtflow"),
    ],
)
def test_database_urls_are_normalized_to_the_async_drivers(given: str, expected: str) -> None:
    assert Settings.from_env({"DEBTFLOW_DATABASE_URL": given}).database_url == expected


def test_memory_url_selects_the_in_memory_adapters() -> None:
    settings = Settings.from_env({"DEBTFLOW_DATABASE_URL": MEMORY_URL})

    assert settings.in_memory
    assert settings.database_url == "memory://"


@pytest.mark.parametrize("url", ["redis://localhost", "rediss://:token@cache.internal:6380/2"])
def test_redis_urls_are_accepted(url: str) -> None:
    assert Settings.from_env({"DEBTFLOW_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("DEBTFLOW_DATABASE_URL", "foo", "'foo' is not a database URL: the database URL is"),
        ("DEBTFLOW_DATABASE_URL", "mysql://db/x", "'mysql://db/x' is not a database URL"),
        ("DEBTFLOW_DATABASE_URL", "", "is empty"),
        ("DEBTFLOW_DATABASE_URL", "sqlite://", "'sqlite://' names no SQLite file"),
        ("DEBTFLOW_DATABASE_URL", "sqlite:///:memory:", "'sqlite:///:memory:' names no SQLite"),
        ("DEBTFLOW_REDIS_URL", "http://cache", "'http://cache' is not a Redis URL"),
        ("DEBTFLOW_REDIS_URL", "redis://", "'redis://' is not a Redis URL"),
        ("DEBTFLOW_REDIS_URL", "redis://cache:port", "'redis://cache:port' is not a Redis URL"),
        ("DEBTFLOW_BROKER_URL", "redis://cache:6379/l", "'redis://cache:6379/l' is not a Redis"),
        ("DEBTFLOW_REDIS_URL", " ", "is empty"),
        ("DEBTFLOW_CORS_ORIGINS", "", "names no origin; unset it to keep CORS off"),
        ("DEBTFLOW_CORS_ORIGINS", " , ", "names no origin"),
        ("DEBTFLOW_NIGHTLY_EXPORTS", " ", "names no report kind; unset it to export none"),
        ("DEBTFLOW_NIGHTLY_EXPORTS", ",", "names no report kind"),
    ],
)
def test_a_bad_value_is_named_with_its_variable(name: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})

    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith(f"{name}: {reason}")


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DEBTFLOW_DATABASE_URL": "foo", "DEBTFLOW_REDIS_URL": "http://x"})

    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        "DEBTFLOW_DATABASE_URL",
        "DEBTFLOW_REDIS_URL",
    ]
    assert str(raised.value) == "; ".join(raised.value.problems)
    assert "\n" not in str(raised.value)


def test_passwords_never_appear_in_repr_or_str() -> None:
    settings = Settings.from_env(
        {
            "DEBTFLOW_DATABASE_URL": "postgresql://app:pg-s3cret@db/debtflow",
            "DEBTFLOW_REDIS_URL": "rediss://:redis-s3cret@cache:6380/0",
        }
    )

    for shown in (repr(settings), str(settings)):
        assert "s3cret" not in shown
        assert "postgresql+psycopg://app:***@db/debtflow" in shown
        assert "rediss://:***@cache:6380/0" in shown


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBTFLOW_DATABASE_URL", "mysql://app:s3cret@db/x"),
        ("DEBTFLOW_DATABASE_URL", "postgresql://app:s3cret@db:port/x"),
        ("DEBTFLOW_DATABASE_URL", "host=db password=s3cret"),
        ("DEBTFLOW_REDIS_URL", "http://:s3cret@cache"),
        ("DEBTFLOW_REDIS_URL", "redis://:s3cret@cache:port"),
    ],
)
def test_passwords_never_appear_in_error_messages(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})

    assert "s3cret" not in str(raised.value)
    assert "***" in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://debtflow:Tr0ub4dor@xyzzy@127.0.0.1:5432/postgres",
        # Read as the host 'xy' and the database 'zzy@127.0.0.1:5432/postgres'.
        "postgresql://debtflow:Tr0ub4dor@xy/zzy@127.0.0.1:5432/postgres",
        # A '?' in the password: the part of the URL before the query holds one '@' only.
        "postgresql://debtflow:Tr0ub4dor?@xyzzy@127.0.0.1:5432/postgres",
    ],
)
def test_a_database_url_with_an_at_sign_not_percent_encoded_is_refused_unshown(url: str) -> None:
    """SQLAlchemy ends the password at its first '@' and reads the rest as the host, which
    every connection error then names."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DEBTFLOW_DATABASE_URL": url})

    [problem] = raised.value.problems
    assert problem.startswith("DEBTFLOW_DATABASE_URL: ")
    assert "%40" in problem
    for part in ("Tr0ub4dor", "xy", "zzy"):
        assert part not in problem
    encoded = url.replace("@xy", "%40xy", 1)
    assert Settings.from_env({"DEBTFLOW_DATABASE_URL": encoded}).database_url


def test_redis_urls_keep_an_at_sign_in_the_password_as_redis_py_reads_them() -> None:
    """redis-py (and so taskiq-redis) ends the user-info at the last '@': nothing of the
    password is taken for the host, so such a URL works and is accepted."""
    url = "redis://:Tr0ub4dor@xyzzy@127.0.0.1:6379/0"
    settings = Settings.from_env({"DEBTFLOW_REDIS_URL": url, "DEBTFLOW_BROKER_URL": url})

    assert parse_url(url) == {
        "password": "Tr0ub4dor@xyzzy",
        "host": "127.0.0.1",
        "port": 6379,
        "db": 0,
    }
    assert "Tr0ub4dor" not in repr(settings) and "xyzzy" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:p@ss/w@h:5/db", "postgresql://u:***@h:5/db"),
        ("to redis://:tok@r:6379/0 and back", "to redis://:***@r:6379/0 and back"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("sqlite:///data/a@b:c.db", "sqlite:///data/a@b:c.db"),
        ("dbname=x PASSWORD=hunter2 host=y", "dbname=x PASSWORD=*** host=y"),
        ("postgresql://u:***@h/x", "postgresql://u:***@h/x"),
    ],
)
def test_redact_hides_passwords_and_keeps_the_rest(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_gateway_breaker_is_tuned_from_the_environment() -> None:
    assert (Settings().gateway_failure_threshold, Settings().gateway_reset_seconds) == (5, 30)
    tuned = Settings.from_env(
        {"DEBTFLOW_GATEWAY_FAILURE_THRESHOLD": "3", "DEBTFLOW_GATEWAY_RESET_SECONDS": "10"}
    )
    assert (tuned.gateway_failure_threshold, tuned.gateway_reset_seconds) == (3, 10)
    with pytest.raises(SettingsError, match="DEBTFLOW_GATEWAY_RESET_SECONDS"):
        Settings.from_env({"DEBTFLOW_GATEWAY_RESET_SECONDS": "0"})


def test_worker_and_stripe_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "DEBTFLOW_BROKER_URL": "redis://127.0.0.1:6379/2",
            "DEBTFLOW_SETTLE_AFTER_SECONDS": "120",
            "DEBTFLOW_STRIPE_API_KEY": "sk_test_abc",
            "DEBTFLOW_STRIPE_API_BASE": "http://127.0.0.1:12111/",
            "DEBTFLOW_STRIPE_WEBHOOK_SECRET": "whsec_abc",
        }
    )
    assert settings.broker_url == "redis://127.0.0.1:6379/2"
    assert settings.settle_after_seconds == 120
    assert settings.stripe_api_key == "sk_test_abc"
    assert settings.stripe_api_base == "http://127.0.0.1:12111"
    assert settings.stripe_webhook_secret == "whsec_abc"
    defaults = Settings.from_env({})
    assert (defaults.broker_url, defaults.stripe_api_key, defaults.stripe_webhook_secret) == (
        None,
        None,
        None,
    )


def test_bad_worker_and_stripe_settings_are_named() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "DEBTFLOW_BROKER_URL": "amqp://rabbit",
                "DEBTFLOW_SETTLE_AFTER_SECONDS": "0",
                "DEBTFLOW_STRIPE_API_KEY": "",
                "DEBTFLOW_STRIPE_API_BASE": "ftp://x",
                "DEBTFLOW_STRIPE_WEBHOOK_SECRET": "two words",
            }
        )
    names = [problem.split(":")[0] for problem in raised.value.problems]
    assert names == [
        "DEBTFLOW_BROKER_URL",
        "DEBTFLOW_SETTLE_AFTER_SECONDS",
        "DEBTFLOW_STRIPE_API_KEY",
        "DEBTFLOW_STRIPE_API_BASE",
        "DEBTFLOW_STRIPE_WEBHOOK_SECRET",
    ]
    assert "two words" not in str(raised.value)


def test_stripe_secrets_and_broker_passwords_never_appear_in_repr() -> None:
    settings = Settings(
        broker_url="redis://:brokerpass@redis:6379/0",
        stripe_api_key="sk_live_secret",
        stripe_webhook_secret="whsec_secret",
    )
    text = repr(settings)
    for secret in ("brokerpass", "sk_live_secret", "whsec_secret"):
        assert secret not in text
    assert "stripe_api_key='***'" in text


def test_storage_and_source_settings_are_read(tmp_path) -> None:
    settings = Settings.from_env(
        {
            "DEBTFLOW_STORAGE_URL": "s3://debtflow-backups",
            "DEBTFLOW_S3_REGION": "eu-west-1",
            "DEBTFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "DEBTFLOW_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "DEBTFLOW_S3_SECRET_ACCESS_KEY": "s3cr3t-access-key",
            "DEBTFLOW_PUBLIC_URL": "https://api.agency.example/",
            "DEBTFLOW_LINK_SECRET": "l" * 40,
            "DEBTFLOW_SOURCES_ROOT": str(tmp_path),
            "DEBTFLOW_SFTP_TIMEOUT_SECONDS": "30",
        }
    )
    assert settings.storage_url == "s3://debtflow-backups"
    assert (settings.s3_region, settings.s3_endpoint_url) == ("eu-west-1", "http://127.0.0.1:9000")
    assert settings.api_base_url == "https://api.agency.example"
    assert settings.link_signing_key == b"l" * 40
    assert (settings.sources_root, settings.sftp_timeout_seconds) == (str(tmp_path), 30)
    shown = repr(settings)
    assert "AKIAEXAMPLE" not in shown and "s3cr3t-access-key" not in shown
    assert "l" * 40 not in shown


def test_storage_defaults_to_a_local_directory_and_links_to_the_api() -> None:
    settings = Settings.from_env({"DEBTFLOW_JWT_SECRET": "k" * 40})
    assert settings.storage_url == "file:debtflow-storage"
    assert settings.api_base_url == "http://127.0.0.1:8000"
    # Derived from the JWT secret, so every process sharing it signs links alike.
    assert (
        settings.link_signing_key
        == Settings.from_env({"DEBTFLOW_JWT_SECRET": "k" * 40}).link_signing_key
    )
    assert settings.link_signing_key != b"k" * 40


def test_links_to_the_api_on_an_ipv6_address_put_it_in_brackets() -> None:
    settings = Settings.from_env({"DEBTFLOW_HTTP_HOST": "::1", "DEBTFLOW_HTTP_PORT": "8080"})
    assert settings.api_base_url == settings.listen_url == "http://[::1]:8080"


def test_bad_storage_and_source_settings_are_named(tmp_path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "DEBTFLOW_STORAGE_URL": "ftp://somewhere",
                "DEBTFLOW_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
                "DEBTFLOW_PUBLIC_URL": "api.agency.example",
                "DEBTFLOW_LINK_SECRET": "short",
                "DEBTFLOW_SOURCES_ROOT": str(tmp_path / "missing"),
                "DEBTFLOW_SFTP_TIMEOUT_SECONDS": "0",
            }
        )
    named = {problem.split(":")[0] for problem in caught.value.problems}
    assert named == {
        "DEBTFLOW_STORAGE_URL",
        "DEBTFLOW_S3_ACCESS_KEY_ID and DEBTFLOW_S3_SECRET_ACCESS_KEY",
        "DEBTFLOW_PUBLIC_URL",
        "DEBTFLOW_LINK_SECRET",
        "DEBTFLOW_SOURCES_ROOT",
        "DEBTFLOW_SFTP_TIMEOUT_SECONDS",
    }
    for url in ("s3://", "file:", "memory", "s3://bucket/debtflow/prod"):
        with pytest.raises(SettingsError):
            Settings.from_env({"DEBTFLOW_STORAGE_URL": url})
    assert Settings.from_env({"DEBTFLOW_STORAGE_URL": "s3://bucket/"}).storage_url


def test_export_settings_default_and_are_read() -> None:
    defaults = Settings.from_env({})
    settings = Settings.from_env(
        {
            "DEBTFLOW_EXPORT_RETENTION_DAYS": "90",
            "DEBTFLOW_EXPORT_LINK_SECONDS": "3600",
            "DEBTFLOW_NIGHTLY_EXPORTS": " aging, collections,aging ",
        }
    )

    assert (defaults.export_retention_days, defaults.export_link_seconds) == (30, 900)
    assert defaults.nightly_exports == ()
    assert (settings.export_retention_days, settings.export_link_seconds) == (90, 3600)
    assert settings.nightly_exports == (ExportKind.AGING, ExportKind.COLLECTIONS)
    assert "nightly_exports=(<ExportKind.AGING" in repr(settings)


def test_bad_export_settings_are_named() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "DEBTFLOW_EXPORT_RETENTION_DAYS": "0",
                "DEBTFLOW_EXPORT_LINK_SECONDS": "604801",
                "DEBTFLOW_NIGHTLY_EXPORTS": "aging,payroll",
            }
        )

    assert len(caught.value.problems) == 3
    retention, link, nightly = caught.value.problems
    assert retention.startswith("DEBTFLOW_EXPORT_RETENTION_DAYS: '0' is not a whole number")
    assert link.startswith("DEBTFLOW_EXPORT_LINK_SECONDS: '604801' is not a whole number")
    assert nightly.startswith("DEBTFLOW_NIGHTLY_EXPORTS: 'payroll': not a report kind")
    assert "collector_performance" in nightly


def test_the_audit_retention_is_off_unless_set_and_never_under_three_years() -> None:
    assert Settings.from_env({}).audit_retention_months is None
    given = Settings.from_env({"DEBTFLOW_AUDIT_RETENTION_MONTHS": "84"})
    assert given.audit_retention_months == 84
    for too_short in ("35", "0", "three years"):
        with pytest.raises(SettingsError, match="DEBTFLOW_AUDIT_RETENTION_MONTHS"):
            Settings.from_env({"DEBTFLOW_AUDIT_RETENTION_MONTHS": too_short})


def test_the_in_process_scheduler_is_refused_where_it_would_not_be_the_only_one() -> None:
    assert not Settings.from_env({}).in_process_scheduler
    assert Settings.from_env({"DEBTFLOW_IN_PROCESS_SCHEDULER": "true"}).in_process_scheduler
    assert not Settings.from_env({"DEBTFLOW_IN_PROCESS_SCHEDULER": "0"}).in_process_scheduler
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "DEBTFLOW_IN_PROCESS_SCHEDULER": "yes",
                "DEBTFLOW_BROKER_URL": "redis://127.0.0.1:6379/1",
                "DEBTFLOW_HTTP_WORKERS": "2",
            }
        )
    [problem] = caught.value.problems
    assert problem.startswith("DEBTFLOW_IN_PROCESS_SCHEDULER: ")
    assert "debtflow scheduler" in problem
    # The server's workers are judged by `debtflow serve`, once its --workers flag applies.
    several = {"DEBTFLOW_IN_PROCESS_SCHEDULER": "yes", "DEBTFLOW_HTTP_WORKERS": "2"}
    assert Settings.from_env(several).http_workers == 2
    with pytest.raises(SettingsError, match="not a switch"):
        Settings.from_env({"DEBTFLOW_IN_PROCESS_SCHEDULER": "sometimes"})
