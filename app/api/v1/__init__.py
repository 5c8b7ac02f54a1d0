"""The JSON API, version 1: stable, for integrators and the dashboard (see CONTRACT.md)."""

from fastapi import APIRouter

from app.api.v1 import auth, exports, forms, reference, stats

router = APIRouter(prefix="/api/v1")
for module in (auth, reference, exports, forms, stats):  # exports first: /forms/export.csv before /forms/{id}
    router.include_router(module.router)
