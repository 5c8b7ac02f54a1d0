"""Every page router, in one router for the app (app/main.py). The package's ``__init__`` imports nothing, so
importing one page module (``app.web.session`` from the plumbing, say) never loads all the others."""

from __future__ import annotations

from fastapi import Depends

from app.http.routing import GuardedRouter
from app.web import activities as activity_pages
from app.web import auth, calendar_office, desk, duty, imports, office, public, rep, roster_office, similar
from app.web import paper as paper_pages
from app.web import records as record_pages
from app.web import reports as report_pages
from app.web.session import page_principal

# Every page knows who is looking (the header shows their links), whether or not the route asks.
router = GuardedRouter(include_in_schema=False, dependencies=[Depends(page_principal)])
router.include_router(auth.router)
router.include_router(public.router)
router.include_router(rep.router)
router.include_router(desk.router)
router.include_router(office.router)
router.include_router(similar.router)
router.include_router(duty.router)
router.include_router(roster_office.router)
router.include_router(imports.router)
router.include_router(calendar_office.router)
router.include_router(activity_pages.router)  # the register of activities (issue 20.2)
router.include_router(paper_pages.router)  # paper forms: print, enter, reconcile (issue 20.1)
router.include_router(record_pages.router)
router.include_router(report_pages.router)
