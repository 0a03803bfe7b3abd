"""The Litestar application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import swagger_ui
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from api import openapi
from api.boundary import MAX_BODY_BYTES, InputBoundary
from api.dependencies import DEPENDENCIES
from api.errors import EXCEPTION_HANDLERS
from api.middleware import AuthMiddleware, IdempotencyMiddleware, OptionsAnswer, RequestContext
from api.routes import audit as audit_routes
from api.routes import billing as billing_routes
from api.routes import finance_page, system
from api.routes import incidents as incident_routes
from api.routes import payments as payment_routes
from api.routes import reports as report_routes
from api.routes import webhooks as webhook_routes
from api.strict import StrictInputMiddleware
from billing import service as billing
from billing.service import close_stripe, configure_stripe
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
    *payment_routes.ROUTES,
    *report_routes.ROUTES,
    *webhook_routes.ROUTES,
    *finance_page.ROUTES,
)


DOCS_ASSETS = "/schema/assets"


def _docs_assets() -> ControllerRouterHandler:
    """Swagger UI's JavaScript and CSS, from the installed package (nothing from a CDN)."""
    return create_static_files_router(
        path=DOCS_ASSETS,
        directories=[Path(swagger_ui.__file__).parent / "static"],
        include_in_schema=False,
        name="docs-assets",
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
        # Swagger UI from the swagger-ui-py wheel, served here: the docs work offline.
        render_plugins=[
            SwaggerRenderPlugin(
                js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' href='{DOCS_ASSETS}/favicon-32x32.png'>",
                path="/swagger",
            )
        ],
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


def _templates() -> TemplateConfig[JinjaTemplateEngine]:
    """The finance page's Jinja templates (autoescaped), with its filters for people."""

    def filters(engine: JinjaTemplateEngine) -> None:
        for name, function in finance_page.FILTERS.items():
            engine.engine.filters[name] = function

    return TemplateConfig(
        directory=finance_page.TEMPLATES, engine=JinjaTemplateEngine, engine_callback=filters
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
        app.state.redis = await queue.connect(settings.redis, wait=False)
        billing.start_entitlement_cache(db.engine().config["dsn"])
        # Everything built so far lives for the whole process: keep it out of the cyclic
        # collector's full passes, which otherwise stall every request in flight.
        gc.collect()
        gc.freeze()
        # Requests allocate many short-lived objects; collect young ones less often.
        gc.set_threshold(20_000, 20, 50)

    async def shutdown(app: Litestar) -> None:
        await billing.stop_entitlement_cache()
        await close_stripe()
        await app.state.redis.aclose()
        await db.close_pool()

    def on_app_init(config: AppConfig) -> AppConfig:
        config.state["settings"] = settings
        return config

    app = Litestar(
        route_handlers=[*ROUTES, _docs_assets(), *extra_routes],
        on_startup=[startup],
        on_shutdown=[shutdown],
        on_app_init=[on_app_init],
        middleware=[
            AuthMiddleware(settings.rate_limit_per_minute),
            IdempotencyMiddleware(settings.idempotency_ttl_hours),
            StrictInputMiddleware(),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        dependencies=DEPENDENCIES,
        openapi_config=_openapi(),
        template_config=_templates(),
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
            form_body_paths=finance_page.FORM_PATHS,
        )
    )
    return app


def app_from_env() -> Any:
    """Entry point for uvicorn (``api.app:app_from_env`` with ``--factory``)."""
    return create_app()
