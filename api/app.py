"""The Litestar application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.types import ControllerRouterHandler

from api import openapi
from api.boundary import MAX_BODY_BYTES, InputBoundary
from api.errors import EXCEPTION_HANDLERS
from api.middleware import AuthMiddleware, IdempotencyMiddleware, OptionsAnswer, RequestContext
from api.routes import audit as audit_routes
from api.routes import billing as billing_routes
from api.routes import incidents as incident_routes
from api.routes import system
from api.routes import webhooks as webhook_routes
from api.strict import StrictInputMiddleware
from billing.stripe_gateway import close as close_stripe
from billing.stripe_gateway import configure_from_settings as configure_stripe
from common import db
from common.config import Settings, configure_logging, get_settings
from workers import queue

log = logging.getLogger("api")

ROUTES: Sequence[ControllerRouterHandler] = (
    system.health,
    system.ready,
    audit_routes.AuditLogController,
    *billing_routes.ROUTES,
    *incident_routes.ROUTES,
    *webhook_routes.ROUTES,
)


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Support Billing",
        version="1.0.0",
        description=(
            "Tiered premium support on Stripe: plans, subscriptions, fast-track incidents, "
            "entitlements, SLA enforcement and service credits."
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key created with `support-billing keys create`.",
                )
            }
        ),
        security=[{"ApiKey": []}],
        servers=[Server(url="/")],
        use_handler_docstrings=True,
    )


def create_app(
    settings: Settings | None = None, extra_routes: Sequence[ControllerRouterHandler] = ()
) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    openapi.install()

    async def startup(app: Litestar) -> None:
        configure_stripe(settings)
        await db.open_pool(
            max_size=settings.database_pool_size,
            acquire_timeout=settings.database_acquire_timeout_seconds,
            application_name="support-billing-api",
        )
        app.state.redis = await queue.connect(
            settings.redis_url or "redis://127.0.0.1:6379/0", wait=False
        )
        # Everything built so far lives for the whole process: keep it out of the cyclic
        # collector's full passes, which otherwise stall every request in flight.
        gc.collect()
        gc.freeze()
        # Requests allocate many short-lived objects; collect young ones less often.
        gc.set_threshold(20_000, 20, 50)

    async def shutdown(app: Litestar) -> None:
        await close_stripe()
        await app.state.redis.aclose()
        await db.close_pool()

    def on_app_init(config: AppConfig) -> AppConfig:
        config.state["settings"] = settings
        return config

    app = Litestar(
        route_handlers=[*ROUTES, *extra_routes],
        on_startup=[startup],
        on_shutdown=[shutdown],
        on_app_init=[on_app_init],
        middleware=[
            AuthMiddleware(settings.rate_limit_per_minute),
            IdempotencyMiddleware(settings.idempotency_ttl_hours),
            StrictInputMiddleware(),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi(),
        request_max_body_size=MAX_BODY_BYTES,
        debug=False,
        logging_config=None,
    )
    # Outside Litestar's own exception handling and routing, so that every request, also
    # one refused as 404/405 or by the auth middleware, crosses the input boundary and gets
    # a request id and an access-log line with the status it received.
    methods: dict[str, set[str]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            methods.setdefault(route.path_format, set()).update(
                m for m in handler.http_methods if m not in ("OPTIONS", "HEAD")
            )
    app.asgi_handler = RequestContext(
        InputBoundary(
            OptionsAnswer(app.asgi_handler, methods),
            raw_body_paths=billing_routes.RAW_BODY_PATHS,
        )
    )
    return app


def app_from_env() -> Any:
    """Entry point for uvicorn (``api.app:app_from_env`` with ``--factory``)."""
    return create_app()
