from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import Header, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException

from app.http import abuse
from app.http.deps import IdPath, PrincipalDep, SessionDep, SettingsDep
from app.errors import Invalid, UnsupportedMediaType
from app.http.routing import GuardedRouter
from app.models import FormPhoto, OpinionForm, Scope, utcnow
from app.schemas.common import Page, problem
from app.schemas.forms import (
    AssignBody,
    CodeReissued,
    ContactRead,
    CloseBody,
    DecisionBody,
    ExtensionBody,
    FormCreate,
    FormCreated,
    FormDetail,
    FormQuery,
    FormRead,
    MergeBody,
    NoteBody,
    ReasonBody,
    ReassignBody,
    ReopenBody,
    ReplyBody,
    SmsStopBody,
    SmsStopped,
    SpotAnswerBody,
    TrackRead,
    UrgeBody,
)
from app.schemas.photos import PhotoRead
from app.services import disclosure, intake
from app.services import forms as form_service
from app.services import idempotency as idempotency_service
from app.services import merging
from app.services import photos as photo_service
from app.services import sms as sms_service
from app.services import verification
from app.services import views, workflow
from app.services.auth import Principal

router = GuardedRouter(tags=["forms"])


# The workflow's actions answer 409 when the form's status does not allow them (services/workflow.py).
_WRONG_STATUS = "Not in the form's current status (`invalid_transition`, with `current_status` and `action`)"
TRANSITION = {409: problem(_WRONG_STATUS)}
DECISION = {409: problem(f"{_WRONG_STATUS}, or no extension is pending (`no_pending_extension`)")}


def _read(form: OpinionForm, principal: Principal) -> FormRead:
    return views.form_read(form, now=utcnow(), view=disclosure.of(principal))


def _detail(form: OpinionForm, principal: Principal) -> FormDetail:
    return views.form_detail(form, now=utcnow(), view=disclosure.of(principal))


_SUBMIT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/FormCreate"}},
        "multipart/form-data": {
            "schema": {
                "allOf": [{"$ref": "#/components/schemas/FormCreate"}],
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": "照片（wx.uploadFile 的 name 填 file），最多 6 张"}},
            },
        },
    },
}


async def _read_submission(request: Request) -> tuple[FormCreate, list[photo_service.Upload]]:
    """The body as JSON, or as multipart (``wx.uploadFile``: the photo under ``file`` and the form's
    fields beside it). Either way validated as ``FormCreate``, with the same 422 on both."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    uploads: list[photo_service.Upload] = []
    try:
        if content_type == "multipart/form-data":
            # More files than MAX_PHOTOS are parsed (the body limit bounds them all) so that the answer is
            # the clear too_many_photos, not a parser error.
            async with request.form(max_files=photo_service.MAX_PHOTOS * 4, max_fields=50) as form:
                fields: dict[str, Any] = {}
                for name, value in form.multi_items():
                    if isinstance(value, StarletteUpload):
                        uploads.append(await photo_service.read_upload(value, request.app.state.settings))
                    else:
                        fields[name] = value
            return FormCreate.model_validate(fields), uploads
        if content_type in ("application/json", "") or content_type.endswith("+json"):
            return FormCreate.model_validate_json(await request.body() or b"null"), uploads
    except ValidationError as exc:
        # The same locations FastAPI gives a declared body: ("body", field, ...).
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=None) from exc
    except MultiPartException as exc:
        raise Invalid(f"表单数据无法解析：{exc.message}", code="invalid_multipart") from exc
    raise UnsupportedMediaType("请以 JSON 或 multipart/form-data 提交。", code="unsupported_media_type")


@router.post(
    "/forms",
    status_code=status.HTTP_201_CREATED,
    response_model=FormCreated,
    summary="Submit an opinion form (public), as JSON or multipart with photos",
    responses={422: problem("Invalid body, or Idempotency-Key reused with another body"),
               409: problem("The same Idempotency-Key is still being handled (`idempotency_in_progress`)"),
               415: problem("Neither JSON nor multipart/form-data")},
    openapi_extra={"requestBody": _SUBMIT_BODY},
)
async def submit_form(
    request: Request,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JSONResponse:
    if principal.client is not None:
        principal.require_scope(Scope.forms_write)
    await abuse.public_submission(request, principal)
    body, uploads = await _read_submission(request)

    def answer(accepted: form_service.Accepted, photos: Sequence[FormPhoto]) -> dict[str, Any]:
        created = _created(accepted, principal)
        if photos:
            created["photos"] = [PhotoRead.model_validate(p).model_dump(mode="json") for p in photos]
        return created

    def before_the_front_door(photos: Sequence[photo_service.PreparedPhoto]) -> str:
        payload = body.model_dump(mode="json")
        if photos:
            payload["photos"] = [photo.sha256 for photo in photos]
        return idempotency_service.request_hash(payload)

    outcome = await intake.submit_form(
        request.app.state, principal, form_service.Submission(**body.model_dump()), door="api", answer=answer,
        client_address=abuse.client_ip(request), idempotency_key=idempotency_key, uploads=uploads,
        previous_fingerprint=before_the_front_door,
    )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


def _created(accepted: form_service.Accepted, principal: Principal) -> dict[str, Any]:
    created = _read(accepted.form, principal).model_dump(mode="json")
    created["verification_code"] = accepted.code  # the FormCreated shape, without validating it all again
    return created


@router.get("/forms", response_model=Page[FormRead], summary="List forms (staff)")
async def list_forms(
    principal: PrincipalDep,
    session: SessionDep,
    filters: Annotated[FormQuery, Query()],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    sort: Annotated[Literal["relevance", "newest"] | None, Query(
        description="With `q`: `relevance` (default; the newest 200 matches ranked, then older ones newest "
                    "first) or `newest`. Without `q` the list is always newest first.")] = None,
) -> Page[FormRead]:
    principal.require_staff_or_scope(Scope.forms_read)
    forms, next_cursor = await form_service.list_forms(
        session, principal=principal, filters=filters, limit=limit, cursor=cursor, sort=sort
    )
    return Page(items=[_read(f, principal) for f in forms], next_cursor=next_cursor)


@router.get("/forms/{form_id}", response_model=FormDetail, summary="One form with its timeline (staff)")
async def get_form(form_id: IdPath, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    return _detail(await form_service.get_visible(session, principal, form_id), principal)


@router.post("/forms/{form_id}/assign", response_model=FormDetail, responses=TRANSITION,
             summary="批办 assign to a handling unit")
async def assign(form_id: IdPath, body: AssignBody, principal: PrincipalDep, session: SessionDep, settings: SettingsDep) -> FormDetail:
    form = await workflow.assign(
        session, principal=principal, form_id=form_id, unit_id=body.unit_id, instructions=body.instructions,
        due_at=body.due_at, settings=settings,
    )
    return _detail(form, principal)


@router.post("/forms/{form_id}/reassign", response_model=FormDetail, responses=TRANSITION,
             summary="改派 reassign to another unit")
async def reassign(form_id: IdPath, body: ReassignBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.reassign(
        session, principal=principal, form_id=form_id, unit_id=body.unit_id, instructions=body.instructions
    )
    return _detail(form, principal)


@router.post("/forms/{form_id}/reply", response_model=FormDetail, responses=TRANSITION,
             summary="答复 reply")
async def reply(form_id: IdPath, body: ReplyBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.reply(
        session, principal=principal, form_id=form_id, reply_text=body.reply, internal_note=body.internal_note
    )
    return _detail(form, principal)


@router.post("/forms/{form_id}/close", response_model=FormDetail, responses=TRANSITION,
             summary="办结 close after follow-up")
async def close(form_id: IdPath, body: CloseBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.close(
        session, principal=principal, form_id=form_id, satisfaction=body.satisfaction, note=body.note
    )
    return _detail(form, principal)


@router.post("/forms/{form_id}/reopen", response_model=FormDetail, responses=TRANSITION,
             summary="重办 reopen to the unit")
async def reopen(form_id: IdPath, body: ReopenBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.reopen(
        session, principal=principal, form_id=form_id, reason=body.reason, unit_id=body.unit_id
    )
    return _detail(form, principal)


@router.post("/forms/{form_id}/return", response_model=FormDetail, responses=TRANSITION,
             summary="退回 the unit returns it to the office")
async def return_form(form_id: IdPath, body: ReasonBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.return_to_office(session, principal=principal, form_id=form_id, reason=body.reason)
    return _detail(form, principal)


@router.post("/forms/{form_id}/extension", response_model=FormDetail, summary="延期 the unit asks for a later deadline",
             responses={409: problem(f"{_WRONG_STATUS}, or one is already pending (`extension_pending`)")})
async def request_extension(form_id: IdPath, body: ExtensionBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.request_extension(
        session, principal=principal, form_id=form_id, due_at=body.due_at, reason=body.reason
    )
    return _detail(form, principal)


@router.post("/forms/{form_id}/extension/approve", response_model=FormDetail, responses=DECISION,
             summary="批准延期 approve the extension")
async def approve_extension(form_id: IdPath, body: DecisionBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.decide_extension(session, principal=principal, form_id=form_id, approve=True, note=body.note)
    return _detail(form, principal)


@router.post("/forms/{form_id}/extension/refuse", response_model=FormDetail, responses=DECISION,
             summary="不批准延期 refuse the extension")
async def refuse_extension(form_id: IdPath, body: DecisionBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.decide_extension(session, principal=principal, form_id=form_id, approve=False, note=body.note)
    return _detail(form, principal)


@router.post("/forms/{form_id}/answer-on-spot", response_model=FormDetail, responses=TRANSITION,
             summary="当场答复 answer on the spot")
async def answer_on_spot(form_id: IdPath, body: SpotAnswerBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.answer_on_spot(session, principal=principal, form_id=form_id, reply_text=body.reply)
    return _detail(form, principal)


@router.post("/forms/{form_id}/urge", response_model=FormDetail, responses=TRANSITION,
             summary="催办 chase the unit")
async def urge(form_id: IdPath, body: UrgeBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    return _detail(await workflow.urge(session, principal=principal, form_id=form_id, note=body.note), principal)


@router.post("/forms/{form_id}/notes", response_model=FormDetail, summary="内部备注 internal note (staff only)")
async def add_note(form_id: IdPath, body: NoteBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    return _detail(await workflow.add_note(session, principal=principal, form_id=form_id, note=body.note), principal)


@router.post("/forms/{form_id}/clear-review", response_model=FormDetail,
             responses={409: problem("The form is not flagged for review (`not_flagged`)")},
             summary="内容审核通过 clear the content-check flag (office)")
async def clear_review(form_id: IdPath, body: DecisionBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    return _detail(await workflow.clear_review(session, principal=principal, form_id=form_id, note=body.note), principal)


@router.post("/forms/{form_id}/decline", response_model=FormDetail, responses=TRANSITION,
             summary="不予受理 decline")
async def decline(form_id: IdPath, body: ReasonBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    form = await workflow.decline(session, principal=principal, form_id=form_id, reason=body.reason)
    return _detail(form, principal)


# 合并办理 (services/merging.py): each refusal has its own code.
MERGE = {
    403: problem("Not the office (`forbidden`)"),
    409: problem("The lead is merged into another (`lead_is_merged`) or finished (`lead_finished`); a form is "
                 "merged elsewhere (`already_merged`), a lead of others (`form_is_lead`), finished "
                 "(`form_finished`), or with another handling unit than the lead's (`merge_across_units`)"),
    422: problem("A form does not exist (`unknown_form`), or the lead is among `form_ids` (`merge_into_itself`)"),
}


@router.post("/forms/{form_id}/merge", response_model=FormDetail, responses=MERGE,
             summary="合并办理 merge similar forms into this one, the lead (office)")
async def merge(form_id: IdPath, body: MergeBody, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    """The forms of `form_ids` follow this form from now on: its assignment, reply and closure, each with its
    own events and notices. All or nothing; a form already merged into this one is left as it is."""
    form = await merging.merge(session, principal=principal, lead_id=form_id, form_ids=body.form_ids)
    return _detail(form, principal)


@router.post("/forms/{form_id}/unmerge", response_model=FormDetail, summary="取消合并 unmerge (office)",
             responses={403: problem("Not the office (`forbidden`)"),
                        409: problem("The form is neither merged nor a lead (`not_merged`)")})
async def unmerge(form_id: IdPath, principal: PrincipalDep, session: SessionDep) -> FormDetail:
    """A follower goes back to the state it had when it was merged; on a lead, every follower does."""
    return _detail(await merging.unmerge(session, principal=principal, form_id=form_id), principal)


@router.post("/forms/{form_id}/verification-code", response_model=CodeReissued,
             summary="补发查询码 a new verification code (the office, or the representative who entered the form)",
             responses={403: problem("Not the office nor the representative who entered the form (`forbidden`), "
                                     "or a form the caller may not see (`form_forbidden`)")})
async def reissue_code(form_id: IdPath, request: Request, response: Response, principal: PrincipalDep,
                       session: SessionDep) -> CodeReissued:
    """The old code stops working at once and the number's tracking lock, if any, is lifted (the person asking
    is in front of the office or the representative). An internal event says who did it; never cached."""
    form, code = await abuse.reissue_code(request, session, principal, form_id)
    response.headers["Cache-Control"] = "no-store"
    return CodeReissued(form_id=form.id, tracking_no=form.tracking_no, verification_code=code)


@router.post("/forms/{form_id}/contact", response_model=ContactRead, summary="查看联系方式 reveal the resident's contact (audited)",
             responses={403: problem("Not a staff account, or the form is not one the caller may see (`form_forbidden`)")})
async def reveal_contact(form_id: IdPath, request: Request, response: Response, principal: PrincipalDep,
                         session: SessionDep) -> ContactRead:
    """Staff outside the office read names and phones masked; a handler or representative who must call the
    resident back asks here. Each answer is a line in the audit log (`form.contact_revealed`); never cached."""
    contact = await abuse.reveal_contact(request, session, principal, form_id)
    response.headers["Cache-Control"] = "no-store"
    return ContactRead(**vars(contact))


@router.get("/track/{tracking_no}", response_model=TrackRead, summary="Public tracking by number and code")
async def track(
    request: Request,
    tracking_no: Annotated[str, Path(max_length=40)],
    session: SessionDep,
    code: Annotated[str, Query(min_length=1, max_length=16)],
) -> TrackRead:
    form = await verification.find(session, abuse.verification_guard(request), tracking_no=tracking_no, code=code)
    return TrackRead.build(form)


@router.post("/track/{tracking_no}/sms-stop", response_model=SmsStopped,
             summary="不再接收短信通知 stop a form's SMS notices (by number and code)",
             responses={404: problem("Unknown number or wrong code, alike (`tracking_not_found`)"),
                        429: problem("Too many attempts, or the number is locked (`tracking_locked`)")})
async def stop_sms(
    request: Request,
    tracking_no: Annotated[str, Path(max_length=40)],
    body: SmsStopBody,
    session: SessionDep,
) -> SmsStopped:
    """The resident who holds the number and its code stops the form's SMS: waiting ones are not sent and
    no new ones are written (the same guard as tracking counts the attempt). Asking again changes nothing."""
    form = await verification.find(session, abuse.verification_guard(request), tracking_no=tracking_no, code=body.code)
    stopped = await sms_service.stop(session, form=form)
    assert form.sms_stopped_at is not None
    return SmsStopped(tracking_no=form.tracking_no, sms_stopped_at=form.sms_stopped_at, stopped_messages=stopped)
