"""The JSON API, version 1: stable, for integrators and the dashboard (see CONTRACT.md)."""

from fastapi import APIRouter

from app.api.v1 import auth, forms, reference, stats

router = APIRouter(prefix="/api/v1")
for module in (auth, reference, forms, stats):
    router.include_router(module.router)
