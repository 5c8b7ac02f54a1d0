"""Apps for tests, built cheaply.

FastAPI prepares the state of each included route (its dependencies, body and response models) lazily,
on the first request an app serves, and keeps it on that app: about 0.5 s for Minyi's ~170 routes, paid
again by every new app. The route table depends only on the code, never on the settings, so every app a
test process builds shares the table of the first one (kept warm by every request through it); each app
still has its own settings, engine, caches, queues, middleware and lifespan, as ``create_app`` made them.

What a test cannot do on such an app: ``app.dependency_overrides`` (the shared routes consult the first
app's) — no test here uses them; a test that needs them builds its app with ``create_app`` itself.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings
from app.main import create_app

_route_table: list | None = None  # the routes of the first app built in this process


def build_app(settings: Settings) -> FastAPI:
    """``create_app(settings)``, sharing this process's route table."""
    global _route_table
    application = create_app(settings)
    if _route_table is None:
        _route_table = list(application.router.routes)
    else:
        application.router.routes = list(_route_table)
    return application
