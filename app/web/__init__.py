"""The HTML side: pages for residents, representatives and the office, in Chinese, calling the same
services as the API. Every action is a real link or form (redirect after POST); htmx only makes it
smoother. See frontend/templates and STYLE.md."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.web import auth, calendar_office, duty, imports, office, public, rep, roster_office
from app.web.session import page_principal

# Every page knows who is looking (the header shows their links), whether or not the route asks.
router = APIRouter(include_in_schema=False, dependencies=[Depends(page_principal)])
router.include_router(auth.router)
router.include_router(public.router)
router.include_router(rep.router)
router.include_router(office.router)
router.include_router(duty.router)
router.include_router(roster_office.router)
router.include_router(imports.router)
router.include_router(calendar_office.router)
