"""The office's Excel page: import representatives or duty rosters from .xlsx/CSV, watch a big import's
progress, read the rows it refused (and save them as a CSV to fix the file by); and the .xlsx exports of
rosters, attendance and the session funnel.

The upload is a plain multipart form (redirect after POST to the job's page); the job's page refreshes
its progress with htmx while the import runs, and with a meta refresh when scripts are off.

``/office/exports/forms`` answers the forms list's "导出当前列表" links for the filters the list's form
sends: htmx refreshes them beside the list (issue 17.3), so they always export what the list shows."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from app.errors import Invalid, PermissionDenied
from app.http.deps import IdPath, SessionDep
from app.http.downloads import attachment
from app.http.routing import GuardedRouter
from app.models import User
from app.services import exports as export_service
from app.services import imports as import_service
from app.services.auth import Principal
from app.web import office
from app.web.render import redirect, render, templates
from app.web.session import CheckedForm, PagePrincipal, SignedIn

router = GuardedRouter()

KINDS = {"representatives": "党代表名册", "shifts": "值班表", "activities": "活动登记"}


def _office(user: User) -> Principal:
    if user.role not in import_service.OFFICE:
        raise PermissionDenied("此页面仅供办公室使用。", code="forbidden")
    return Principal(user=user)


def _page(request: Request, *, errors: dict[str, str] | None = None, kind: str = "shifts", status_code: int = 200) -> Response:
    return render(request, "office/imports.html", {"kinds": KINDS, "kind": kind, "errors": errors or {},
                                                   "active": "imports"}, status_code=status_code)


@router.get("/office/imports")
async def imports_page(request: Request, user: SignedIn) -> Response:
    _office(user)
    return _page(request)


@router.post("/office/imports")
async def upload(request: Request, user: SignedIn, form: CheckedForm) -> Response:
    principal = _office(user)
    kind = str(form.get("kind") or "")
    file = form.get("file")
    if kind not in KINDS:
        return _page(request, errors={"kind": "请选择导入的内容。"}, status_code=422)
    if not isinstance(file, UploadFile) or not file.filename:
        return _page(request, kind=kind, errors={"file": "请选择要导入的文件（.xlsx 或 .csv）。"}, status_code=422)
    try:
        job_id, _finished = await import_service.start_import(
            request.app.state.sessionmaker, request.app.state.imports, principal=principal, kind=kind,
            file_name=file.filename, content=await file.read(),
        )
    except Invalid as refused:  # the file as a whole: wrong type, missing columns, no rows
        return _page(request, kind=kind, errors={"file": refused.detail}, status_code=422)
    return redirect(f"/office/imports/{job_id}")


@router.get("/office/imports/{job_id}")
async def job_page(request: Request, user: SignedIn, job_id: IdPath, session: SessionDep) -> Response:
    principal = _office(user)
    job = await import_service.get_job(session, principal=principal, job_id=job_id)
    running = job.status in ("pending", "running")
    response = render(request, "office/import_job.html", {"job": job, "kinds": KINDS, "running": running,
                                                          "active": "imports"}, block="job")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/office/imports/{job_id}/errors.csv")
async def job_errors(user: SignedIn, job_id: IdPath, session: SessionDep) -> Response:
    """The rows a failed import refused, as a CSV the office fixes its file by (行, 列, 原因)."""
    principal = _office(user)
    job = await import_service.get_job(session, principal=principal, job_id=job_id)
    rows = [("行", "列", "原因"), *((e.get("row") or "", e.get("column") or "", e.get("reason") or "")
                                    for e in job.errors or [])]
    name = f"{KINDS.get(job.kind, '导入')}导入问题_{job.id}.csv"
    return Response(export_service.csv_bytes(rows, bom=True), media_type=export_service.CSV_MEDIA_TYPE,
                    headers={**attachment(name, fallback=f"minyi-import-{job.id}-errors.csv"),
                             "Cache-Control": "no-store"})


@router.get("/office/exports/forms")
async def forms_export_links(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    """The forms list's export links for the filters in the query: the list page's own reading of them
    (``office._list_context``), so the file holds exactly the rows the list shows."""
    _office(user)
    context = await office._list_context(request, session, principal, request.query_params)
    macros = templates.env.get_template("macros.html").module
    html = macros.export_current("/api/v1/forms/export", context["export_query"],  # type: ignore[attr-defined]
                                 refresh="/office/exports/forms")
    response = HTMLResponse(str(html))
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response
