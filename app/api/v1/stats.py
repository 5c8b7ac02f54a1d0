from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from app.http.deps import PrincipalDep
from app.http.polls import etag_matches
from app.http.routing import GuardedRouter
from app.models import Scope, utcnow
from app.schemas.dates import BoundedDate
from app.schemas.stats import AnswerDaysList, CountList, Summary
from app.services import stats as stats_service
from app.schemas.activities import ActivityKindCount, ActivityStats
from app.services import activities as activity_service

router = GuardedRouter(prefix="/stats", tags=["statistics"])

FromQ = Annotated[BoundedDate | None, Query(alias="from", description="首日（含），YYYY-MM-DD")]
ToQ = Annotated[BoundedDate | None, Query(alias="to", description="末日（含），YYYY-MM-DD")]


async def _answer(request: Request, which: str, filters: dict[str, Any]) -> Response:
    """Counts from the process's cache when fresh (see services/read_cache.py), else computed; then 304
    if the caller already has them. The next identical poll is answered before routing (api/polls.py)."""
    state = request.app.state

    async def compute() -> tuple[str, bytes]:
        # A session of its own: the computation is shared by every poll that arrives meanwhile.
        async with state.sessionmaker() as session:
            flt = await stats_service.resolve_filter(session, **filters)
            now = utcnow()
            counts = await getattr(stats_service, which)(session, flt, now=now)
        if which == "summary":
            body = Summary(**counts, as_of=now).model_dump(mode="json")
        elif which == "answer_days":
            body = AnswerDaysList(items=counts, as_of=now).model_dump(mode="json")
            body["next_cursor"] = None
        else:
            body = CountList(items=counts, as_of=now).model_dump(mode="json")
            body["next_cursor"] = None
        return stats_service.etag_for(counts), JSONResponse(body).body

    return await _cached(request, (which, *sorted(filters.items())), compute)


async def _cached(request: Request, key: tuple[Any, ...], compute: Any) -> Response:
    """The answer under ``key`` from the statistics cache (``compute`` fills it), as 200 or as 304 when the
    caller's ``If-None-Match`` still matches; remembered so the next identical poll skips routing."""
    state = request.app.state
    etag, body = await state.stats_cache.get_or_compute(key, compute)
    state.poll_answers.remember(request.scope, key)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/summary", response_model=Summary, responses={304: {"description": "Not modified"}})
async def summary(
    request: Request, principal: PrincipalDep,
    workroom: str | None = None, category: str | None = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Response:
    """Cumulative counts (every form that ever reached a step) and ``current``: the forms in each state now,
    each equal to the forms list's total under the filter ``stats.CURRENT_FILTERS`` names. One ETag over
    both: it changes when any count does."""
    principal.require_staff_or_scope(Scope.stats_read)
    return await _answer(request, "summary", dict(workroom=workroom, category=category,
                                                            date_from=date_from, date_to=date_to))


async def _list(request: Request, principal: PrincipalDep, which: str, **filters: Any) -> Response:
    principal.require_staff_or_scope(Scope.stats_read)
    return await _answer(request, which, filters)


@router.get("/by-workroom", response_model=CountList, responses={304: {"description": "Not modified"}})
async def by_workroom(
    request: Request, principal: PrincipalDep,
    workroom: str | None = None, category: str | None = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Response:
    return await _list(request, principal, "by_workroom", workroom=workroom, category=category,
                       date_from=date_from, date_to=date_to)


@router.get("/by-category", response_model=CountList, responses={304: {"description": "Not modified"}})
async def by_category(
    request: Request, principal: PrincipalDep,
    workroom: str | None = None, category: str | None = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Response:
    return await _list(request, principal, "by_category", workroom=workroom, category=category,
                       date_from=date_from, date_to=date_to)


@router.get("/monthly", response_model=CountList, responses={304: {"description": "Not modified"}})
async def monthly(
    request: Request, principal: PrincipalDep,
    workroom: str | None = None, category: str | None = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Response:
    return await _list(request, principal, "monthly", workroom=workroom, category=category,
                       date_from=date_from, date_to=date_to)


@router.get("/by-unit", response_model=CountList, responses={304: {"description": "Not modified"}})
async def by_unit(
    request: Request, principal: PrincipalDep,
    workroom: str | None = None, category: str | None = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Response:
    """Per handling unit: forms each unit is now responsible for; ``returned`` counts its own returns.
    Only ``from``/``to`` apply: ``workroom`` or ``category`` → 422 ``unsupported_filter``."""
    return await _list(request, principal, "by_unit", workroom=workroom, category=category,
                       date_from=date_from, date_to=date_to)


@router.get("/by-representative", response_model=CountList, responses={304: {"description": "Not modified"}})
async def by_representative(
    request: Request, principal: PrincipalDep,
    workroom: str | None = None, category: str | None = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Response:
    """Per representative: forms each one entered.
    Only ``from``/``to`` apply: ``workroom`` or ``category`` → 422 ``unsupported_filter``."""
    return await _list(request, principal, "by_representative", workroom=workroom, category=category,
                       date_from=date_from, date_to=date_to)


@router.get("/answer-days", response_model=AnswerDaysList, responses={304: {"description": "Not modified"}})
async def answer_days(
    request: Request, principal: PrincipalDep,
    workroom: str | None = None, category: str | None = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Response:
    """How long first answers took: answered forms per bucket of working days from submission to the first
    answer (≤1, 2–3, 4–7, 8–15, >15); filters as the summary (``from``/``to`` on the submission day)."""
    return await _list(request, principal, "answer_days", workroom=workroom, category=category,
                       date_from=date_from, date_to=date_to)


@router.get("/activities", response_model=ActivityStats, responses={304: {"description": "Not modified"}})
async def activities(
    request: Request, principal: PrincipalDep, workroom: str | None = None, date_from: FromQ = None,
    date_to: ToQ = None,
) -> Response:
    """Activities held in ``from``..``to`` (the day held, inclusive): how many and how many people took part,
    by kind and by workroom (issue 20.2). The same counts as ``activities.activity_counts`` (which the
    representatives' records and the briefs use), with an ETag that changes only when a count does."""
    principal.require_staff_or_scope(Scope.stats_read)
    state = request.app.state
    key = ("activities", workroom, date_from, date_to)

    async def compute() -> tuple[str, bytes]:
        async with state.sessionmaker() as session:
            flt = await stats_service.resolve_filter(session, workroom=workroom, date_from=date_from, date_to=date_to)
            counts = await activity_service.activity_stats(
                session, date_from=flt.date_from, date_to=flt.date_to, workroom_id=flt.workroom_id)
        body = ActivityStats(
            activities=counts["activities"], attendance=counts["attendance"],
            by_kind=[ActivityKindCount(kind=kind, label=activity_service.kind_label(kind), activities=n)
                     for kind, n in counts["by_kind"].items()],
            by_workroom=counts["by_workroom"], as_of=utcnow(),
        ).model_dump(mode="json")
        return stats_service.etag_for(counts), JSONResponse(body).body

    return await _cached(request, key, compute)
