"""The JSON API, version 1: stable, for integrators and the dashboard (see CONTRACT.md)."""

from fastapi import APIRouter

from app.api.v1 import auth, calendars, exports, forms, imports, reference, rosters, service_points, stats

router = APIRouter(prefix="/api/v1")
# exports first: /forms/export.csv before /forms/{id}
for module in (auth, reference, exports, forms, stats, rosters, service_points, calendars, imports):
    router.include_router(module.router)
