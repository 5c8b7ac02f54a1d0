"""The office's Excel page: import representatives or duty rosters from .xlsx/CSV, watch a big import's
progress, read the rows it refused; and the .xlsx exports of rosters, attendance and the session funnel.

The upload is a plain multipart form (redirect after POST to the job's page); the job's page refreshes
its progress with htmx while the import runs, and with a meta refresh when scripts are off."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.errors import Invalid, PermissionDenied
from app.http.deps import IdPath, SessionDep
from app.models import User
from app.services import imports as import_service
from app.services.auth import Principal
from app.web.render import redirect, render
from app.web.session import CheckedForm, SignedIn

router = APIRouter()

KINDS = {"representatives": "党代表名册", "shifts": "值班表"}


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
