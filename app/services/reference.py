"""Reference data: workrooms, representatives, handling units, categories.

Admins write them; authenticated users read them (categories are public).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.errors import Conflict, Invalid, NotFound
from app.models import Category, HandlingUnit, Representative, Workroom
from app.services.pagination import paginate

MAX_PAGE = 200


async def _flush_unique(session: AsyncSession, message: str, code: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(message, code=code) from exc


# --- workrooms ---------------------------------------------------------------------------------------


async def list_workrooms(
    session: AsyncSession, *, active_only: bool = False, limit: int = MAX_PAGE, cursor: str | None = None
) -> tuple[Sequence[Workroom], str | None]:
    query = select(Workroom).order_by(Workroom.code)
    if active_only:
        query = query.where(Workroom.active.is_(True))
    return await paginate(session, query, limit=limit, cursor=cursor)


async def get_workroom(session: AsyncSession, code: str) -> Workroom | None:
    return await session.scalar(select(Workroom).where(Workroom.code == code))


async def get_workroom_or_raise(session: AsyncSession, code: str) -> Workroom:
    workroom = await get_workroom(session, code)
    if workroom is None:
        raise NotFound(f"工作室 {code} 不存在。", code="workroom_not_found")
    return workroom


async def create_workroom(session: AsyncSession, *, data: dict[str, Any]) -> Workroom:
    if await get_workroom(session, data["code"]) is not None:
        raise Conflict(f"工作室编号 {data['code']} 已存在。", code="workroom_exists")
    workroom = Workroom(**data)
    session.add(workroom)
    await _flush_unique(session, f"工作室编号 {data['code']} 已存在。", "workroom_exists")
    return workroom


async def update_workroom(session: AsyncSession, *, code: str, data: dict[str, Any]) -> Workroom:
    workroom = await get_workroom_or_raise(session, code)
    for field, value in data.items():
        setattr(workroom, field, value)
    await session.flush()
    return workroom


async def workrooms_by_codes(session: AsyncSession, codes: Sequence[str]) -> list[Workroom]:
    if not codes:
        return []
    found = {w.code: w for w in await session.scalars(select(Workroom).where(Workroom.code.in_(codes)))}
    missing = [c for c in codes if c not in found]
    if missing:
        raise Invalid(f"工作室不存在：{'、'.join(missing)}", code="unknown_workroom")
    return [found[c] for c in dict.fromkeys(codes)]


# --- representatives ---------------------------------------------------------------------------------


async def list_representatives(
    session: AsyncSession, *, workroom_code: str | None = None, limit: int = MAX_PAGE, cursor: str | None = None
) -> tuple[Sequence[Representative], str | None]:
    query = select(Representative).options(selectinload(Representative.workrooms)).order_by(Representative.id)
    if workroom_code:
        query = query.where(Representative.workrooms.any(Workroom.code == workroom_code))
    return await paginate(session, query, limit=limit, cursor=cursor)


async def get_representative_or_raise(session: AsyncSession, representative_id: int) -> Representative:
    representative = await session.scalar(
        select(Representative)
        .options(selectinload(Representative.workrooms))
        .where(Representative.id == representative_id)
    )
    if representative is None:
        raise NotFound(f"党代表 {representative_id} 不存在。", code="representative_not_found")
    return representative


async def create_representative(session: AsyncSession, *, data: dict[str, Any]) -> Representative:
    codes = data.pop("workroom_codes", None) or []
    representative = Representative(**data)
    representative.workrooms = await workrooms_by_codes(session, codes)
    session.add(representative)
    await session.flush()
    return representative


async def update_representative(session: AsyncSession, *, representative_id: int, data: dict[str, Any]) -> Representative:
    representative = await get_representative_or_raise(session, representative_id)
    if "workroom_codes" in data:
        representative.workrooms = await workrooms_by_codes(session, data.pop("workroom_codes") or [])
    for field, value in data.items():
        setattr(representative, field, value)
    await session.flush()
    return representative


async def workroom_ids_of_representative(session: AsyncSession, representative_id: int) -> list[int]:
    representative = await get_representative_or_raise(session, representative_id)
    return [w.id for w in representative.workrooms]


# --- handling units ----------------------------------------------------------------------------------


async def list_units(
    session: AsyncSession, *, limit: int = MAX_PAGE, cursor: str | None = None
) -> tuple[Sequence[HandlingUnit], str | None]:
    return await paginate(session, select(HandlingUnit).order_by(HandlingUnit.id), limit=limit, cursor=cursor)


async def get_unit_or_raise(session: AsyncSession, unit_id: int, *, invalid: bool = False) -> HandlingUnit:
    unit = await session.get(HandlingUnit, unit_id)
    if unit is None or not unit.active:
        message = f"承办单位 {unit_id} 不存在。"
        if invalid:
            raise Invalid(message, code="unknown_unit")
        raise NotFound(message, code="unit_not_found")
    return unit


async def create_unit(session: AsyncSession, *, name: str) -> HandlingUnit:
    if await session.scalar(select(HandlingUnit.id).where(HandlingUnit.name == name)) is not None:
        raise Conflict(f"承办单位 {name} 已存在。", code="unit_exists")
    unit = HandlingUnit(name=name)
    session.add(unit)
    await _flush_unique(session, f"承办单位 {name} 已存在。", "unit_exists")
    return unit


# --- categories --------------------------------------------------------------------------------------


async def list_categories(
    session: AsyncSession, *, active_only: bool = False, limit: int = MAX_PAGE, cursor: str | None = None
) -> tuple[Sequence[Category], str | None]:
    query = select(Category).order_by(Category.sort_order, Category.id)
    if active_only:
        query = query.where(Category.active.is_(True))
    return await paginate(session, query, limit=limit, cursor=cursor)


async def get_category(session: AsyncSession, code: str) -> Category | None:
    return await session.scalar(select(Category).where(Category.code == code))


async def create_category(
    session: AsyncSession, *, code: str, name: str, due_days: int, description: str = "", keywords: str = ""
) -> Category:
    if await get_category(session, code) is not None:
        raise Conflict(f"类别 {code} 已存在。", code="category_exists")
    last = await session.scalar(select(Category.sort_order).order_by(Category.sort_order.desc()).limit(1))
    category = Category(code=code, name=name, due_days=due_days, sort_order=(last or 0) + 1,
                        description=description, keywords=keywords)
    session.add(category)
    await _flush_unique(session, f"类别 {code} 已存在。", "category_exists")
    return category


async def update_category(session: AsyncSession, *, code: str, data: dict[str, Any]) -> Category:
    category = await get_category(session, code)
    if category is None:
        raise NotFound(f"类别 {code} 不存在。", code="category_not_found")
    for field, value in data.items():
        setattr(category, field, value)
    await session.flush()
    return category
