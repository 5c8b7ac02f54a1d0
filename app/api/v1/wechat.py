"""The WeChat mini-program's endpoints: login by wx.login() code, the resident's own forms, and the
notice credits the resident gives (docs/integration.md)."""

from __future__ import annotations

from fastapi import Request

from app.http.deps import CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep, SettingsDep
from app.http.routing import GuardedRouter
from app.schemas.auth import TokenRead
from app.schemas.common import Page, problem
from app.schemas.wechat import MyFormRead, SubscriptionList, SubscriptionRead, SubscriptionReport, WechatLogin
from app.services import residents as resident_service

router = GuardedRouter(tags=["integrations"])


@router.post(
    "/wechat/login",
    response_model=TokenRead,
    summary="Log a resident in with a wx.login() code",
    responses={
        401: problem("WeChat refused the code (`wechat_login_failed`, its errcode in `detail`/`errcode`)"),
        403: problem("The resident is disabled (`resident_disabled`)"),
        429: problem("WeChat's login rate limit (45011, `wechat_rate_limited`)"),
        502: problem("WeChat refused our AppID, secret or server IP (`wechat_misconfigured`)"),
        503: problem("WeChat unreachable (`wechat_unavailable`) or not configured (`wechat_not_configured`), "
                     "or the database (`database_unavailable`)"),
    },
)
async def login(body: WechatLogin, request: Request, session: SessionDep, settings: SettingsDep) -> TokenRead:
    token, expires_in = await resident_service.login(
        session, wechat=request.app.state.wechat, code=body.code, ttl_seconds=settings.resident_token_ttl_seconds
    )
    return TokenRead(access_token=token, expires_in=expires_in)


@router.get("/me/forms", response_model=Page[MyFormRead], summary="The resident's own forms, newest first")
async def my_forms(
    principal: PrincipalDep, session: SessionDep, limit: LimitQ = 50, cursor: CursorQ = None
) -> Page[MyFormRead]:
    resident = principal.require_resident()
    forms, next_cursor = await resident_service.list_forms(session, resident_id=resident.id, limit=limit, cursor=cursor)
    return Page(items=[MyFormRead.build_mine(form) for form in forms], next_cursor=next_cursor)


@router.get("/me/forms/{form_id}", response_model=MyFormRead, summary="One of the resident's own forms")
async def my_form(form_id: IdPath, principal: PrincipalDep, session: SessionDep) -> MyFormRead:
    resident = principal.require_resident()
    return MyFormRead.build_mine(await resident_service.get_form(session, resident_id=resident.id, form_id=form_id))


@router.get("/me/subscriptions", response_model=SubscriptionList, summary="The resident's notice credits per template")
async def my_subscriptions(principal: PrincipalDep, session: SessionDep) -> SubscriptionList:
    resident = principal.require_resident()
    credits = await resident_service.list_credits(session, resident_id=resident.id)
    return SubscriptionList(items=[SubscriptionRead.model_validate(c) for c in credits])


@router.post(
    "/me/subscriptions",
    response_model=SubscriptionList,
    summary="Report the accepts of wx.requestSubscribeMessage: each is one notice we may send",
)
async def report_subscriptions(
    body: SubscriptionReport, principal: PrincipalDep, session: SessionDep
) -> SubscriptionList:
    resident = principal.require_resident()
    credits = await resident_service.add_credits(
        session, resident_id=resident.id, template_id=body.template_id, accepted=body.accepted
    )
    return SubscriptionList(items=[SubscriptionRead.model_validate(c) for c in credits])
