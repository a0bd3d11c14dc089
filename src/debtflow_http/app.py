"""The Litestar application: ``create_app`` is the factory for servers and tests alike.

Run it with ``debtflow serve``, ``litestar --app debtflow_http.app:create_app run`` or any
ASGI server (``uvicorn --factory debtflow_http.app:create_app``).
"""

from __future__ import annotations

import gc
import logging
from importlib.metadata import version

from dishka import Provider
from dishka.integrations.litestar import DishkaRouter, LitestarProvider, setup_dishka
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from debtflow_adapters.composition import make_container
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq.in_process import InProcessScheduler
from debtflow_http.auth import BEARER, ActorProvider, authenticated, give_back_kept_connection
from debtflow_http.logs import configure_logging
from debtflow_http.metrics import metrics_middleware
from debtflow_http.middleware import request_context_middleware
from debtflow_http.openapi import ClosedStructs
from debtflow_http.problems import EXCEPTION_HANDLERS
from debtflow_http.resources.accounts import AccountController
from debtflow_http.resources.audit_log import AuditLogController
from debtflow_http.resources.auth import AuthController, MeController
from debtflow_http.resources.debtors import DebtorController
from debtflow_http.resources.exports import ExportController
from debtflow_http.resources.file_sources import FileSourceController
from debtflow_http.resources.files import FileController
from debtflow_http.resources.health import HealthController
from debtflow_http.resources.imports import imports_router
from debtflow_http.resources.metrics import MetricsController
from debtflow_http.resources.payments import PaymentController, PaymentProcessorController
from debtflow_http.resources.reports import ReportController
from debtflow_http.resources.users import UserController
from debtflow_http.resources.webhooks import WebhookController
from debtflow_http.strict_bodies import decode_strictly

DESCRIPTION = """\
The API of DebtFlow, an open debt-collection platform.

Sign in with `POST /v1/auth/token` and send the access token as `Authorization: Bearer …`.
Everything is scoped to the caller's agency; collectors reach only the accounts assigned to
them. Money is in integer minor units beside an ISO-4217 currency; times are UTC.
Errors are RFC 9457 `application/problem+json`. Lists are cursor-paginated: pass a page's
`next_cursor` back as `cursor`.
"""


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="DebtFlow API",
        version=version("debtflow"),
        description=DESCRIPTION,
        path="/schema",
        render_plugins=[SwaggerRenderPlugin(), RedocRenderPlugin()],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="The access token from POST /v1/auth/token (15 minutes).",
                )
            }
        ),
    )


# Built once: DishkaRouter wraps each controller class's handlers in place as it registers
# it, so a router per app would wrap them again for every app a process builds (tests and
# embedders build many), each request then going through every layer. An app registers a
# deep copy of this router.
API = DishkaRouter(
    "",
    route_handlers=[
        HealthController,
        MetricsController,
        AuthController,
        MeController,
        UserController,
        DebtorController,
        AccountController,
        AuditLogController,
        PaymentProcessorController,
        PaymentController,
        ReportController,
        ExportController,
        FileSourceController,
        WebhookController,
        FileController,
    ],
)


EXPOSED_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "Idempotent-Replayed",
    "Location",
    "Content-Disposition",
    "WWW-Authenticate",
]
"""The response headers a browser lets a script of another (allowed) origin read, beyond
the CORS-safelisted ones (Content-Type…); it hides any other, so a client could not quote
the request id, wait out Retry-After, tell a replay, follow a Location or name a download."""


def _freeze_heap() -> None:
    """Leave what start-up built (modules, routes, the container) out of the collector's
    way until shutdown: a full collection walked all of it, pausing requests by a hundred
    milliseconds at a time (see docs/benchmarks.md). Garbage is collected first, so none
    is kept; ``gc.unfreeze`` at shutdown hands the rest back."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, *providers: Provider) -> Litestar:
    """Build the API on ``settings`` (read from the environment when omitted).

    ``providers`` are added to the dishka container after the standard ones, so tests and
    embedders can override adapters.
    """
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    container = make_container(settings, LitestarProvider(), ActorProvider(), *providers)

    async def start_scheduler() -> None:
        await container.get(InProcessScheduler)  # runs until the container closes
        logging.getLogger("debtflow").info("the schedule runs in this process")

    app = Litestar(
        route_handlers=[API, imports_router(settings)],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi(),
        plugins=[ClosedStructs()],
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins), expose_headers=EXPOSED_HEADERS
        )
        if settings.cors_origins
        else None,
        guards=[authenticated],
        before_request=decode_strictly,
        before_send=[give_back_kept_connection],
        on_startup=[_freeze_heap, *([start_scheduler] if settings.in_process_scheduler else [])],
        on_shutdown=[container.close, gc.unfreeze],
        logging_config=None,
        debug=False,
    )
    setup_dishka(container, app)
    # Outermost, so that every response gets its request id and headers, errors included;
    # the metrics inside it, so that they see the status Litestar answered with.
    app.asgi_handler = request_context_middleware(metrics_middleware(app.asgi_handler))
    return app
