"""The composition root: which adapter serves which port, decided once from the settings.

Entrypoints never construct adapters themselves. They call :func:`make_container` with the
:class:`~debtflow_adapters.settings.Settings` and add their own integration providers (the
HTTP app its Litestar provider, the worker its Taskiq one); tests add providers that
override some factories (declared with ``override=True``, which strict validation demands).

Scopes: clients that are expensive or hold shared state (the engine, the in-memory store,
the password hasher) live as long as the container (APP); a unit of work and the use cases
using it are made per REQUEST, so every use case in one request shares its unit of work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from dishka import (
    STRICT_VALIDATION,
    AsyncContainer,
    Provider,
    Scope,
    from_context,
    make_async_container,
    provide,
    provide_all,
)
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from debtflow_adapters.clock import SystemClock
from debtflow_adapters.file_source_readers import FileSourceReaders
from debtflow_adapters.gateways.circuit_breaker import CircuitBreakerGateway
from debtflow_adapters.gateways.processors import ProcessorGateways
from debtflow_adapters.health import DatabaseProbe, DependencyDown, Readiness
from debtflow_adapters.local.downloads import SignedDownloads
from debtflow_adapters.local.file_sources import LocalFileSourceReader
from debtflow_adapters.local.object_storage import LocalObjectStorage
from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_adapters.memory import InMemoryRateLimiter, InMemoryStore, InMemoryUnitOfWork
from debtflow_adapters.memory.audit_partitions import InMemoryAuditPartitions
from debtflow_adapters.memory.idempotency_cache import InMemoryIdempotencyCache
from debtflow_adapters.memory.imports import InMemoryImportStore, InMemoryPlacementWriter
from debtflow_adapters.memory.object_storage import InMemoryObjectStorage
from debtflow_adapters.memory.reports import InMemoryReportReader
from debtflow_adapters.persistence import (
    SqlAuditPartitions,
    SqlUnitOfWork,
    create_engine,
)
from debtflow_adapters.persistence.imports import make_placement_writer
from debtflow_adapters.persistence.reports import SqlReportReader
from debtflow_adapters.prometheus.telemetry import PrometheusTelemetry
from debtflow_adapters.redis.idempotency_cache import RedisIdempotencyCache
from debtflow_adapters.redis.rate_limiter import RedisRateLimiter
from debtflow_adapters.s3.object_storage import S3Config, S3ObjectStorage
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_adapters.security.argon2 import Argon2PasswordHasher
from debtflow_adapters.security.jwt import JwtAccessTokenCodec
from debtflow_adapters.settings import Settings
from debtflow_adapters.sftp.file_sources import SftpFileSourceReader
from debtflow_adapters.stripe.gateway import StripeGateway
from debtflow_adapters.stripe.webhooks import StripeWebhookVerifier, WebhooksOff
from debtflow_adapters.taskiq import TaskiqJobQueue, make_broker, make_scheduler
from debtflow_adapters.taskiq.file_source_schedule import FileSourceSchedule
from debtflow_adapters.taskiq.in_process import InProcessScheduler, in_process_broker
from debtflow_core.domain.imports import FileSourceKind
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.ports.access_tokens import AccessTokenCodec
from debtflow_core.ports.audit_partitions import AuditPartitions
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.file_sources import FileSourceReader
from debtflow_core.ports.gateway_events import WebhookVerifier
from debtflow_core.ports.idempotency import IdempotencyCache
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_core.ports.password_hasher import PasswordHasher
from debtflow_core.ports.payment_gateway import PaymentGateway
from debtflow_core.ports.placement_writer import PlacementWriter
from debtflow_core.ports.processor_kinds import ProcessorKinds
from debtflow_core.ports.rate_limiter import RateLimiter
from debtflow_core.ports.reports import ReportReader
from debtflow_core.ports.telemetry import Telemetry
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.accounts import (
    AssignCollector,
    ChangeAccountStatus,
    GetAccount,
    ListAccounts,
    PlaceAccount,
    UnassignCollector,
)
from debtflow_core.use_cases.activities import ListActivities, RecordActivity
from debtflow_core.use_cases.agencies import CreateAgency, FindAgency
from debtflow_core.use_cases.audit_log import (
    AuditRetention,
    MaintainAuditPartitions,
    QueryAuditLog,
)
from debtflow_core.use_cases.auth import (
    Authenticate,
    AuthPolicy,
    Login,
    Logout,
    PurgeSessions,
    Refresh,
)
from debtflow_core.use_cases.debtors import CreateDebtor, GetDebtor, SearchDebtors, UpdateDebtor
from debtflow_core.use_cases.exports import (
    AbandonExport,
    ChooseNightlyExports,
    ExportPolicy,
    FailStalledExports,
    GetExport,
    GetNightlyExports,
    ListExports,
    PurgeExpiredExports,
    QueueNightlyExports,
    RequestExport,
    RunExport,
)
from debtflow_core.use_cases.file_sources import (
    CreateFileSource,
    DeactivateFileSource,
    FetchFileSource,
    FileSourcePolicy,
    GetFileSource,
    ListFileSources,
    PollFileSource,
    UpdateFileSource,
)
from debtflow_core.use_cases.imports import (
    CheckPlacementFile,
    FetchPlacementFiles,
    GetImportRun,
    ImportPlacementFile,
    ImportQueuedRun,
    ListImportErrors,
    ListImportRuns,
    QueuePlacementUpload,
    ResumeStalledImports,
)
from debtflow_core.use_cases.payment_processors import (
    AddPaymentProcessor,
    ListPaymentProcessors,
)
from debtflow_core.use_cases.payments import (
    GetPayment,
    ListPayments,
    MakePayment,
    PurgeIdempotencyKeys,
    RefundPayment,
    SettlePendingPayments,
    SettlePendingRefunds,
)
from debtflow_core.use_cases.reports import (
    AgeBalances,
    MeasureCollectorPerformance,
    MeasureRecovery,
    SummarizeCollections,
    SummarizeImports,
)
from debtflow_core.use_cases.users import (
    ChangeUserRole,
    CreateUser,
    DeactivateUser,
    GetUser,
    ListUsers,
)
from debtflow_core.use_cases.webhooks import (
    ApplyGatewayEvent,
    ReceiveGatewayEvent,
    ResumeGatewayEvents,
)


class SettingsProvider(Provider):
    """The settings, given to the container as context by :func:`make_container`."""

    settings = from_context(provides=Settings, scope=Scope.APP)


class SqlPersistenceProvider(Provider):
    """Units of work over SQLAlchemy, on one engine (and its connection pool) per container."""

    @provide(scope=Scope.APP)
    async def engine(self, settings: Settings) -> AsyncIterator[AsyncEngine]:
        engine = create_engine(settings.database_url)
        yield engine
        await engine.dispose()

    @provide(scope=Scope.REQUEST)
    async def unit_of_work(self, engine: AsyncEngine) -> AsyncIterator[UnitOfWork]:
        uow = SqlUnitOfWork(engine)
        yield uow
        # A connection kept for a block that never came (the operation failed first, or
        # read on a connection of its own) goes back at the request's end at the latest.
        await uow.release()

    # Reports take a connection of their own per call, and hold it only while they read.
    report_reader = provide(SqlReportReader, provides=ReportReader, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def database_probe(self, engine: AsyncEngine) -> DatabaseProbe:
        # Reachable is not enough: on a schema older than the code (a deploy that skipped
        # `debtflow migrate`) every request fails, and the load balancer must know. Alembic,
        # which reads the revisions, is imported at the first /ready, not at every worker
        # process's start.
        from debtflow_adapters.persistence.migrate import SchemaRevisions

        revisions = SchemaRevisions()

        async def migrated() -> None:
            async with engine.connect() as connection:
                lag = await revisions.lag(connection)
            if lag is not None:
                raise DependencyDown(lag)

        return DatabaseProbe(migrated)

    @provide(scope=Scope.APP)
    def placement_writer(self, engine: AsyncEngine) -> PlacementWriter:
        return make_placement_writer(engine)

    @provide(scope=Scope.APP)
    def audit_partitions(self, engine: AsyncEngine) -> AuditPartitions:
        return SqlAuditPartitions(engine)


class MemoryPersistenceProvider(Provider):
    """Units of work over one in-memory store that lives (and dies) with the container."""

    @provide(scope=Scope.APP)
    def store(self) -> InMemoryStore:
        return InMemoryStore()

    unit_of_work = provide(InMemoryUnitOfWork, provides=UnitOfWork, scope=Scope.REQUEST)
    report_reader = provide(InMemoryReportReader, provides=ReportReader, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def database_probe(self) -> DatabaseProbe:
        async def always_up() -> None:
            """In memory: as available as the process itself."""

        return DatabaseProbe(always_up)

    @provide(scope=Scope.APP)
    def import_store(self) -> InMemoryImportStore:
        return InMemoryImportStore()

    placement_writer = provide(InMemoryPlacementWriter, provides=PlacementWriter, scope=Scope.APP)
    audit_partitions = provide(InMemoryAuditPartitions, provides=AuditPartitions, scope=Scope.APP)


class StripeBreaker(CircuitBreakerGateway):
    """The Stripe gateway's circuit breaker: a type of its own, so that the container
    tells it from the sandbox's."""


class ReadinessProvider(Provider):
    """What ``/ready`` checks: the database, Redis (when configured), the broker (when
    configured) and object storage are required; each gateway's circuit breaker is
    reported (down while open, with its state) but does not fail readiness, since
    everything but payments still works."""

    @provide(scope=Scope.APP)
    def readiness(
        self,
        settings: Settings,
        database: DatabaseProbe,
        redis_client: Redis | None,
        storage: ObjectStorage,
        breaker: CircuitBreakerGateway,
        stripe: StripeBreaker | None,
    ) -> Readiness:
        readiness = Readiness()
        readiness.add("database", database.probe)
        if redis_client is not None:
            readiness.add("redis", redis_client.ping)
        if settings.broker_url is not None:
            readiness.add("broker", _redis_answers(settings.broker_url))
        readiness.add("object_storage", storage.check)
        readiness.add("payment_gateway", _circuit_closed(breaker), required=False)
        if stripe is not None:
            readiness.add("stripe_gateway", _circuit_closed(stripe), required=False)
        return readiness


def redis_client(url: str) -> Redis:
    """A client that gives up on a Redis that does not answer, as on one that is down:
    what Redis serves here (login throttling, the idempotency keys' fast path, readiness)
    then goes on without it rather than hang."""
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _redis_answers(url: str) -> Callable[[], Awaitable[None]]:
    """A ping on a connection of its own: the broker's are busy waiting for jobs."""

    async def ping() -> None:
        async with redis_client(url) as client:
            await client.ping()

    return ping


def _circuit_closed(breaker: CircuitBreakerGateway) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        if await breaker.state() == "opened":
            raise DependencyDown("circuit breaker opened")

    return check


class SecurityProvider(Provider):
    """Time and password hashing: stateless, so one of each serves the whole application."""

    scope = Scope.APP

    clock = provide(SystemClock, provides=Clock)
    password_hasher = provide(Argon2PasswordHasher, provides=PasswordHasher)
    auth_policy = provide(AuthPolicy)

    @provide
    def access_tokens(self, settings: Settings) -> AccessTokenCodec:
        return JwtAccessTokenCodec(settings.jwt_secret)


class SharedStateProvider(Provider):
    """State shared by every process through Redis when it is configured (rate-limit
    counters), or kept in this process when it is not."""

    scope = Scope.APP

    @provide
    async def redis_client(self, settings: Settings) -> AsyncIterator[Redis | None]:
        if settings.redis_url is None:
            yield None
            return
        client = redis_client(settings.redis_url)
        yield client
        await client.aclose()

    @provide
    def rate_limiter(self, redis_client: Redis | None, clock: Clock) -> RateLimiter:
        if redis_client is None:
            return InMemoryRateLimiter(clock)
        return RedisRateLimiter(redis_client, clock)

    @provide
    def idempotency_cache(self, redis_client: Redis | None, clock: Clock) -> IdempotencyCache:
        if redis_client is None:
            return InMemoryIdempotencyCache(clock)
        return RedisIdempotencyCache(redis_client)


class GatewayProvider(Provider):
    """A payment gateway per processor kind, each behind its own circuit breaker: the
    sandbox always; Stripe when ``DEBTFLOW_STRIPE_API_KEY`` is set. A payment goes to the
    gateway of its processor's kind."""

    scope = Scope.APP

    @provide
    def breaker(self, settings: Settings, telemetry: Telemetry) -> CircuitBreakerGateway:
        """The sandbox's breaker (reported by ``/ready`` as ``payment_gateway``)."""
        return CircuitBreakerGateway(
            SandboxGateway(),
            threshold=settings.gateway_failure_threshold,
            reset_seconds=settings.gateway_reset_seconds,
            name=ProcessorKind.SANDBOX,
            telemetry=telemetry,
        )

    @provide
    async def stripe(
        self, settings: Settings, telemetry: Telemetry
    ) -> AsyncIterator[StripeBreaker | None]:
        if settings.stripe_api_key is None:
            yield None
            return
        stripe = StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)
        yield StripeBreaker(
            stripe,
            threshold=settings.gateway_failure_threshold,
            reset_seconds=settings.gateway_reset_seconds,
            name=ProcessorKind.STRIPE,
            telemetry=telemetry,
        )
        await stripe.aclose()

    @provide
    def processor_gateways(
        self, sandbox: CircuitBreakerGateway, stripe: StripeBreaker | None
    ) -> ProcessorGateways:
        gateways: dict[ProcessorKind, PaymentGateway] = {ProcessorKind.SANDBOX: sandbox}
        if stripe is not None:
            gateways[ProcessorKind.STRIPE] = stripe
        return ProcessorGateways(gateways)

    @provide
    def gateway(self, gateways: ProcessorGateways) -> PaymentGateway:
        return gateways

    @provide
    def kinds(self, gateways: ProcessorGateways) -> ProcessorKinds:
        return gateways


class JobQueueProvider(Provider):
    """Background jobs: sent to Redis for ``debtflow worker`` when a broker URL is set, else
    run by the worker's own tasks inside this process (see
    :mod:`debtflow_adapters.taskiq.in_process`). The broker starts when a job is first
    sent, and stops with the container, after the jobs it runs in this process."""

    scope = Scope.APP

    @provide
    async def broker(
        self, settings: Settings, container: AsyncContainer
    ) -> AsyncIterator[AsyncBroker]:
        if settings.broker_url is None:
            async with in_process_broker(settings, container) as in_process:
                yield in_process
            return
        broker = make_broker(settings)
        await broker.startup()
        yield broker
        await broker.shutdown()

    job_queue = provide(TaskiqJobQueue, provides=JobQueue)

    @provide
    async def scheduler(
        self, settings: Settings, broker: AsyncBroker, container: AsyncContainer
    ) -> AsyncIterator[InProcessScheduler]:
        """The schedule in this process (``DEBTFLOW_IN_PROCESS_SCHEDULER``), started when
        first asked for and stopped before the broker it sends to."""
        scheduler = InProcessScheduler(
            make_scheduler(broker, settings, FileSourceSchedule(container))
        )
        await scheduler.start()
        yield scheduler
        await scheduler.stop()


class WebhookProvider(Provider):
    """The check of the gateway's webhooks: Stripe's signature with the configured secret,
    or, without one, a verifier that refuses every delivery as not found."""

    scope = Scope.APP

    @provide
    def verifier(self, settings: Settings) -> WebhookVerifier:
        if settings.stripe_webhook_secret is None:
            return WebhooksOff()
        return StripeWebhookVerifier(settings.stripe_webhook_secret)


class StorageProvider(Provider):
    """Object storage for placement-file backups and exports, the links that download
    them, the readers of the agencies' file sources and what those may read. Stateless
    clients: one each."""

    scope = Scope.APP

    @provide
    def links(self, settings: Settings, clock: Clock) -> SignedLinks:
        return SignedLinks(settings.link_signing_key, base_url=settings.api_base_url, clock=clock)

    downloads = provide(SignedDownloads)

    @provide
    def storage(self, settings: Settings, links: SignedLinks) -> ObjectStorage:
        url = urlsplit(settings.storage_url)
        if url.scheme == "s3":
            return S3ObjectStorage(
                S3Config(
                    bucket=url.netloc,
                    region=settings.s3_region,
                    endpoint_url=settings.s3_endpoint_url,
                    access_key=settings.s3_access_key_id,
                    secret_key=settings.s3_secret_access_key,
                )
            )
        if url.scheme == "memory":
            return InMemoryObjectStorage(links)
        return LocalObjectStorage(Path(url.netloc + url.path), links)

    @provide
    def file_sources(self, settings: Settings) -> FileSourceReader:
        readers: dict[FileSourceKind, FileSourceReader] = {
            FileSourceKind.SFTP: SftpFileSourceReader(timeout_seconds=settings.sftp_timeout_seconds)
        }
        if settings.sources_root is not None:
            readers[FileSourceKind.LOCAL] = LocalFileSourceReader(Path(settings.sources_root))
        return FileSourceReaders(readers)

    @provide
    def file_source_policy(self, settings: Settings) -> FileSourcePolicy:
        # The same condition as the local reader's above: the core refuses up front what
        # the reader would refuse at each poll.
        return FileSourcePolicy(local_sources=settings.sources_root is not None)


class TelemetryProvider(Provider):
    """What the business did, as Prometheus metrics of this process (served at
    ``/metrics`` and by the worker; see :mod:`debtflow_adapters.prometheus`)."""

    telemetry = provide(PrometheusTelemetry, provides=Telemetry, scope=Scope.APP)


class UseCaseProvider(Provider):
    """The core's use cases, made per request around that request's unit of work."""

    scope = Scope.REQUEST

    use_cases = provide_all(
        CreateAgency,
        FindAgency,
        CreateUser,
        ListUsers,
        GetUser,
        ChangeUserRole,
        DeactivateUser,
        CreateDebtor,
        GetDebtor,
        UpdateDebtor,
        SearchDebtors,
        PlaceAccount,
        GetAccount,
        ListAccounts,
        AssignCollector,
        UnassignCollector,
        ChangeAccountStatus,
        RecordActivity,
        ListActivities,
        QueryAuditLog,
        Login,
        Refresh,
        Logout,
        Authenticate,
        AddPaymentProcessor,
        ListPaymentProcessors,
        MakePayment,
        GetPayment,
        ListPayments,
        SettlePendingPayments,
        SettlePendingRefunds,
        RefundPayment,
        ApplyGatewayEvent,
        ReceiveGatewayEvent,
        PurgeIdempotencyKeys,
        ImportPlacementFile,
        CheckPlacementFile,
        GetImportRun,
        ListImportRuns,
        ListImportErrors,
        FetchPlacementFiles,
        QueuePlacementUpload,
        ImportQueuedRun,
        ResumeStalledImports,
        ResumeGatewayEvents,
        CreateFileSource,
        ListFileSources,
        GetFileSource,
        UpdateFileSource,
        DeactivateFileSource,
        PollFileSource,
        FetchFileSource,
    )


class ReportProvider(Provider):
    """The reports' use cases, made per request over the application's report reader."""

    scope = Scope.REQUEST

    use_cases = provide_all(
        SummarizeCollections,
        AgeBalances,
        MeasureRecovery,
        MeasureCollectorPerformance,
        SummarizeImports,
    )


class ExportProvider(Provider):
    """Exports: their policy from the settings, and their use cases per request."""

    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> ExportPolicy:
        return ExportPolicy(
            retention=timedelta(days=settings.export_retention_days),
            link_lifetime=timedelta(seconds=settings.export_link_seconds),
            nightly_kinds=settings.nightly_exports,
        )

    use_cases = provide_all(
        RequestExport,
        RunExport,
        GetExport,
        ListExports,
        QueueNightlyExports,
        PurgeExpiredExports,
        AbandonExport,
        FailStalledExports,
        GetNightlyExports,
        ChooseNightlyExports,
        scope=Scope.REQUEST,
    )


class MaintenanceProvider(Provider):
    """The scheduled upkeep's use cases and the audit log's retention from the settings."""

    scope = Scope.REQUEST

    @provide(scope=Scope.APP)
    def audit_retention(self, settings: Settings) -> AuditRetention:
        return AuditRetention(months=settings.audit_retention_months)

    use_cases = provide_all(PurgeSessions, MaintainAuditPartitions)


def make_container(settings: Settings, *extra_providers: Provider) -> AsyncContainer:
    """The application's container, its graph checked now rather than at the first request.

    ``extra_providers`` come after the standard ones, so they may add integrations or
    override a factory; an override must say ``override=True`` (strict validation rejects
    silent ones, and overrides that replace nothing). Close the container
    (``await container.close()``) to dispose of the database engine.
    """
    persistence = MemoryPersistenceProvider() if settings.in_memory else SqlPersistenceProvider()
    return make_async_container(
        SettingsProvider(),
        persistence,
        SecurityProvider(),
        SharedStateProvider(),
        GatewayProvider(),
        ReadinessProvider(),
        TelemetryProvider(),
        JobQueueProvider(),
        WebhookProvider(),
        StorageProvider(),
        UseCaseProvider(),
        ReportProvider(),
        ExportProvider(),
        MaintenanceProvider(),
        *extra_providers,
        context={Settings: settings},
        validation_settings=STRICT_VALIDATION,
    )
