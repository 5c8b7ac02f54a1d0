"""The JSON API, version 1: stable, for integrators and the dashboard (see CONTRACT.md)."""

from fastapi import APIRouter

from app.api.v1 import (
    api_clients,
    audit,
    auth,
    calendars,
    changes,
    exports,
    forms,
    imports,
    lockouts,
    personal_data,
    photos,
    reference,
    rosters,
    service_points,
    stats,
    webhooks,
    wechat,
)

router = APIRouter(prefix="/api/v1")
# exports first: /forms/export.csv before /forms/{id}
for module in (auth, reference, exports, forms, photos, stats, rosters, service_points, calendars, imports,
               wechat, api_clients, webhooks, changes, lockouts, audit, personal_data):
    router.include_router(module.router)
