"""API: paper forms (纸质意见征询表, issue 20.1).

- ``POST /paper-batches`` (coordinator, admin): print a batch of numbered blank forms for a workroom or a
  service-point session; its serials are allocated town-wide, never overlapping another batch's.
- ``GET /paper-batches``, ``GET /paper-batches/{id}`` (the office; a representative for their own
  workrooms): batches with their reconciliation (handed out, entered, voided, missing as ranges); one batch
  adds the forms typed in from it, its voided serials and the next serial to type in.
- ``GET /paper-batches/reconciliation``: the same per workroom and per session, and in total.
- ``GET /paper-batches/{id}/pdf?size=A4|A5``: the sheets, one per serial, each with its QR code.
- ``POST /paper-batches/{id}/voids`` (coordinator, admin): void spoiled or lost sheets (作废).
- ``POST /paper-batches/{id}/forms``: type in a returned sheet by its serial. A serial is entered once:
  a second entry is 409 ``paper_serial_taken`` naming the first form's ``tracking_no``. Photos of the
  sheet go through ``POST /forms/{id}/photos`` as for any form.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response, status

from app.http.deps import CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep, public_url
from app.http.downloads import attachment
from app.http.routing import GuardedRouter
from app.models import PaperBatch, utcnow
from app.schemas.common import DbId, Page, problem
from app.schemas.paper import (
    PageSize,
    PaperBatchCreate,
    PaperBatchDetail,
    PaperBatchRead,
    PaperEntryRead,
    PaperFormCreate,
    PaperFormCreated,
    PaperVoidRead,
    Reconciliation,
    ReconciliationRow,
    Tally,
    VoidRequest,
)
from app.services import paper_forms as paper_service

router = GuardedRouter(prefix="/paper-batches", tags=["paper forms"])

WorkroomQ = Annotated[str | None, Query(max_length=32, description="工作室编号")]
PointQ = Annotated[DbId | None, Query(description="流动服务点（场次）编号")]
SERIAL_PROBLEMS = {
    403: problem("Another workroom's papers (`paper_batch_forbidden`), or not the office / the workroom's representative"),
    409: problem("Entered before (`paper_serial_taken`, with the first form's `tracking_no`) or voided (`paper_serial_voided`)"),
    422: problem("Not a serial (`invalid_paper_serial`), printed in no batch (`paper_serial_unknown`) or in another one "
                 "(`paper_serial_not_in_batch`), or an invalid field"),
}


def _read(batch: PaperBatch, tally: paper_service.Tally) -> dict[str, object]:
    point = batch.service_point
    return dict(
        id=batch.id, workroom_code=batch.workroom.code, workroom_name=batch.workroom.name,
        service_point_id=point.id if point else None, service_point_title=point.title if point else None,
        first_serial=batch.first_serial, last_serial=batch.last_serial, count=batch.last_no - batch.first_no + 1,
        page_size=batch.page_size, note=batch.note, created_at=batch.created_at,
        created_by=batch.created_by.username if batch.created_by else None, printed_at=batch.printed_at,
        printed_by=batch.printed_by.username if batch.printed_by else None, reconciliation=Tally(**tally.as_dict()),
    )


def _detail(state: paper_service.BatchState) -> PaperBatchDetail:
    return PaperBatchDetail(
        **_read(state.batch, state.tally),
        entries=[PaperEntryRead(serial=e.serial, form_id=e.form_id, tracking_no=e.tracking_no) for e in state.entries],
        voids=[PaperVoidRead(serial=v.serial, reason=v.reason, voided_at=v.voided_at,
                             voided_by=v.voided_by.username if v.voided_by else None) for v in state.voids],
        next_serial=state.next_serial(),
    )


@router.post("", response_model=PaperBatchDetail, status_code=status.HTTP_201_CREATED,
             summary="Print a batch of numbered paper forms (office)")
async def create_batch(body: PaperBatchCreate, principal: PrincipalDep, session: SessionDep) -> PaperBatchDetail:
    batch = await paper_service.create_batch(
        session, principal=principal, workroom_code=body.workroom_code, service_point_id=body.service_point_id,
        count=body.count, page_size=body.page_size, note=body.note,
    )
    return _detail((await paper_service.reconcile(session, [batch]))[batch.id])


@router.get("", response_model=Page[PaperBatchRead], summary="Batches of paper forms, newest first")
async def list_batches(
    principal: PrincipalDep, session: SessionDep, workroom: WorkroomQ = None, service_point_id: PointQ = None,
    limit: LimitQ = 50, cursor: CursorQ = None,
) -> Page[PaperBatchRead]:
    batches, next_cursor = await paper_service.list_batches(
        session, principal=principal, workroom_code=workroom, service_point_id=service_point_id, limit=limit,
        cursor=cursor,
    )
    states = await paper_service.reconcile(session, batches)
    return Page(items=[PaperBatchRead(**_read(b, states[b.id].tally)) for b in batches], next_cursor=next_cursor)


@router.get("/reconciliation", response_model=Reconciliation,
            summary="Handed out, entered, voided and missing serials per workroom and session")
async def reconciliation(
    principal: PrincipalDep, session: SessionDep, workroom: WorkroomQ = None, service_point_id: PointQ = None,
) -> Reconciliation:
    result = await paper_service.summary(session, principal=principal, workroom_code=workroom,
                                         service_point_id=service_point_id)
    return Reconciliation(
        totals=Tally(**result.totals.as_dict()),
        workrooms=[ReconciliationRow(workroom_code=w.code, workroom_name=w.name, batches=n, **t.as_dict())
                   for w, n, t in result.workrooms],
        sessions=[ReconciliationRow(workroom_code=w.code, workroom_name=w.name, service_point_id=p.id,
                                    service_point_title=p.title, batches=n, **t.as_dict())
                  for p, w, n, t in result.sessions],
        as_of=utcnow(),
    )


@router.get("/{batch_id}", response_model=PaperBatchDetail, summary="One batch, reconciled")
async def get_batch(batch_id: IdPath, principal: PrincipalDep, session: SessionDep) -> PaperBatchDetail:
    return _detail(await paper_service.batch_state(session, principal=principal, batch_id=batch_id))


@router.get("/{batch_id}/pdf", summary="The batch's sheets as PDF, one per serial",
            response_class=Response, responses={200: {"content": {"application/pdf": {}}},
                                                503: problem("No Chinese font on the server (`cjk_font_missing`)")})
async def batch_pdf(
    request: Request, batch_id: IdPath, principal: PrincipalDep, session: SessionDep,
    size: Annotated[PageSize | None, Query(description="A4 或 A5；默认为批次的纸张大小")] = None,
) -> Response:
    settings = request.app.state.settings
    printing = await paper_service.print_batch(
        session, principal=principal, batch_id=batch_id, page_size=size, base_url=public_url(request, ""),
        settings=settings,
    )
    # Written after the commit: on SQLite a transaction holds the database, and a long batch takes seconds.
    await session.commit()
    data = await paper_service.render(printing, settings=settings)
    return Response(data, media_type="application/pdf",
                    headers={**attachment(printing.filename), "Cache-Control": "no-store"})


@router.post("/{batch_id}/voids", response_model=PaperBatchDetail, summary="Void spoiled or lost sheets (office)",
             responses={409: problem("Entered (`paper_serial_entered`) or voided before (`paper_serial_voided`)"),
                        422: problem("Not a serial of this batch (`paper_serial_not_in_batch`, `invalid_paper_serial`)")})
async def void_serials(batch_id: IdPath, body: VoidRequest, principal: PrincipalDep,
                       session: SessionDep) -> PaperBatchDetail:
    await paper_service.void_serials(session, principal=principal, batch_id=batch_id, serials=body.serials,
                                     reason=body.reason)
    return _detail(await paper_service.batch_state(session, principal=principal, batch_id=batch_id))


@router.post("/{batch_id}/forms", response_model=PaperFormCreated, status_code=status.HTTP_201_CREATED,
             summary="Type in a returned paper form by its serial", responses=SERIAL_PROBLEMS)
async def enter_form(request: Request, batch_id: IdPath, body: PaperFormCreate, principal: PrincipalDep,
                     session: SessionDep) -> PaperFormCreated:
    entered = await paper_service.enter(
        session, principal=principal, serial=body.serial, batch_id=batch_id, settings=request.app.state.settings,
        fields=body.model_dump(exclude={"serial"}),
    )
    form = entered.form
    return PaperFormCreated(
        id=form.id, tracking_no=form.tracking_no, verification_code=entered.code, status=form.status,
        submitted_at=form.submitted_at, paper_serial=entered.serial, batch_id=entered.batch.id,
        next_serial=entered.next_serial,
    )
