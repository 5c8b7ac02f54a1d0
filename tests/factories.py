"""Builders for tests: a small town with one user per role, and helpers that act through the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.models import HandlingUnit, Representative, Role, Workroom
from app.services import auth as auth_service

PASSWORD = "correct-horse-battery"


@dataclass
class World:
    workrooms: dict[str, Workroom] = field(default_factory=dict)
    units: dict[str, HandlingUnit] = field(default_factory=dict)
    representatives: dict[str, Representative] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        """Headers for one of: admin, coordinator, handler_a, handler_b, rep, rep2."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}


async def build_world(sessionmaker: async_sessionmaker[AsyncSession]) -> World:
    """Workrooms LS-01/LS-02, units A/B, representatives 张代表 (LS-01) and 李代表 (LS-02), users of every role."""
    world = World()
    async with transaction(sessionmaker) as session:
        for code, name in (("LS-01", "镇区党代表工作室"), ("LS-02", "石塘湾村党代表工作室")):
            world.workrooms[code] = Workroom(code=code, name=name, address="洛社镇", area="第一网格")
            session.add(world.workrooms[code])
        for key, name in (("A", "镇城建办"), ("B", "镇生态环境办")):
            world.units[key] = HandlingUnit(name=name)
            session.add(world.units[key])
        rep = Representative(name="张代表", level="town", phone="13812345678")
        rep.workrooms = [world.workrooms["LS-01"]]
        rep2 = Representative(name="李代表", level="district", phone="13987654321")
        rep2.workrooms = [world.workrooms["LS-02"]]
        world.representatives = {"rep": rep, "rep2": rep2}
        session.add_all([rep, rep2])
        await session.flush()
        users = {
            "admin": dict(role=Role.admin),
            "coordinator": dict(role=Role.coordinator),
            "handler_a": dict(role=Role.handler, unit_id=world.units["A"].id),
            "handler_b": dict(role=Role.handler, unit_id=world.units["B"].id),
            "rep": dict(role=Role.representative, representative_id=rep.id),
            "rep2": dict(role=Role.representative, representative_id=rep2.id),
        }
        for username, binding in users.items():
            user = await auth_service.create_user(session, username=username, password=PASSWORD, **binding)
            world.user_ids[username] = user.id
            world.tokens[username], _ = await auth_service.issue_token(session, user=user, ttl_seconds=3600)
    return world


async def submit(client: httpx.AsyncClient, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    body = {"content": "村口路灯坏了三盏，晚上走路看不清，请尽快修复。", "category": "urban_traffic"}
    body.update(fields)
    response = await client.post("/api/v1/forms", json=body, headers=headers or {})
    assert response.status_code == 201, response.text
    return response.json()


async def act(
    client: httpx.AsyncClient, world: World, who: str, form_id: int, action: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(f"/api/v1/forms/{form_id}/{action}", json=body or {}, headers=world.auth(who))


async def assigned_form(client: httpx.AsyncClient, world: World, unit: str = "A", **fields: Any) -> dict[str, Any]:
    form = await submit(client, **fields)
    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units[unit].id})
    assert response.status_code == 200, response.text
    return response.json()


async def answered_form(client: httpx.AsyncClient, world: World, unit: str = "A", **fields: Any) -> dict[str, Any]:
    form = await assigned_form(client, world, unit, **fields)
    response = await act(client, world, "coordinator", form["id"], "reply", {"reply": "已安排维修，三日内完成。"})
    assert response.status_code == 200, response.text
    return response.json()
