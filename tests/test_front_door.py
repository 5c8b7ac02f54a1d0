"""One front door for every submission (issue 16, point 1): the JSON API (and so the WeChat mini-program), the
public page, the representative's page and Open311 all go through ``services/intake.submit_form``. The same
content sent through each door leaves the same things behind — one ``submitted`` event, one outbox change, one
webhook delivery with the same case, the counters one higher, the same screening — and only what names the
door (channel, who entered it) differs. The key's promise is the normalised submission, so a retry that
spans an upgrade adding an optional field is still a retry.

Real requests through the in-process app on both databases; WeChat is the fake one over real HTTP.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from app.config import Settings
from app.db import transaction
from app.models import FormChange, FormEvent, OpinionForm, WebhookDelivery
from app.schemas.forms import FormCreate
from app.services import idempotency as idempotency_service
from app.services import intake
from app.services.forms import Submission
from tests.conftest import wechat_settings
from tests.factories import build_world
from tests.fake_wechat import MSG_SEC_CHECK, FakeWeChat
from tests.support.logins import csrf_of, sign_in, wechat_login
from tests.support.problems import assert_problem
from tests.support.webhooks import api_client, create_hook

CONTENT = "前门测试：菜场东侧下水道堵了，一下雨就漫到路面。"
CATEGORY = "urban_traffic"


@pytest.fixture
def settings(db_url: str, fake_wechat: FakeWeChat) -> Settings:
    # WeChat's content check on (it screens residents); no worker, so deliveries stay in the outbox to be read.
    return wechat_settings(db_url, fake_wechat, wechat_content_check=True, worker_in_process=False,
                           supervise_interval_seconds=0)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (30, 120, 200)).save(out, "JPEG")
    return out.getvalue()


async def through_every_door(client: httpx.AsyncClient, fake: FakeWeChat, sessionmaker: Any) -> dict[str, str]:
    """The same content through each door; {door: tracking number}."""
    writer = await api_client(sessionmaker, scopes=("forms:write",), name="市民热线对接")
    resident = await wechat_login(client, fake, "o_front_door")
    body = {"content": CONTENT, "category": CATEGORY, "workroom_code": "LS-01"}
    sent: dict[str, str] = {}

    async def api(name: str, response: httpx.Response) -> None:
        assert response.status_code == 201, f"{name}: {response.text}"
        sent[name] = response.json()["tracking_no"]

    await api("api", await client.post("/api/v1/forms", json=body))
    await api("api with a key", await client.post("/api/v1/forms", json=body, headers={"Idempotency-Key": "door-1"}))
    await api("api with a photo", await client.post("/api/v1/forms", data=body,
                                                    files={"file": ("p.jpg", jpeg(), "image/jpeg")}))
    await api("wechat", await client.post("/api/v1/forms", json=body, headers=resident))
    await api("api key", await client.post("/api/v1/forms", json=body, headers=writer))

    filed = await client.post("/open311/v2/requests.json", content=urlencode({
        "api_key": writer["X-API-Key"], "service_code": CATEGORY, "description": CONTENT,
        "address_string": "洛社镇菜场东侧"}), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert filed.status_code == 201, filed.text
    sent["open311"] = filed.json()[0]["service_request_id"]

    page = await client.get("/submit")
    public = await client.post("/submit", data={"content": CONTENT, "category": CATEGORY, "workroom_code": "LS-01",
                                                "csrf_token": csrf_of(page)})
    assert public.status_code == 303 and public.headers["location"] == "/receipt", public.text[:300]
    receipt = await client.get("/receipt")
    sent["public page"] = receipt.text.split('id="tracking-no">')[1].split("<")[0].strip()

    csrf = await sign_in(client, "rep")
    entered = await client.post("/rep/forms", data={"content": CONTENT, "category": CATEGORY, "source": "w:LS-01",
                                                    "csrf_token": csrf},
                                headers={"Accept": "application/json", "Idempotency-Key": "door-rep-1"})
    assert entered.status_code == 201, entered.text
    sent["rep page"] = entered.json()["tracking_no"]
    return sent


async def left_behind(sessionmaker: Any, tracking_no: str) -> dict[str, Any]:
    """What a submission left in the database, minus what names the door."""
    async with sessionmaker() as session:
        form = await session.scalar(select(OpinionForm).where(OpinionForm.tracking_no == tracking_no))
        assert form is not None, tracking_no
        events = (await session.scalars(select(FormEvent.type).where(FormEvent.form_id == form.id))).all()
        changes = (await session.scalars(select(FormChange).where(FormChange.form_id == form.id))).all()
        deliveries = await session.scalar(
            select(func.count()).select_from(WebhookDelivery)
            .join(FormChange, FormChange.id == WebhookDelivery.change_id).where(FormChange.form_id == form.id))
        door_specific = {"id", "tracking_no", "channel", "submitted_at", "resident_id", "workroom_code",
                         "service_point_id", "location", "updated_at"}
        return {
            "content": form.content, "status": form.status, "review_flag": form.review_flag,
            "events": list(events),
            "changes": [(c.type, {k: v for k, v in c.data.items() if k not in door_specific}) for c in changes],
            "deliveries": deliveries,
        }


async def test_the_same_content_through_every_door_leaves_the_same_things_behind(
        client: httpx.AsyncClient, sessionmaker: Any, fake_wechat: FakeWeChat) -> None:
    await build_world(sessionmaker)
    hooks = await api_client(sessionmaker, scopes=("webhooks",), name="对接平台")
    await create_hook(client, hooks, "http://127.0.0.1:9/minyi", events=["form.submitted"])

    sent = await through_every_door(client, fake_wechat, sessionmaker)

    assert len(set(sent.values())) == len(sent) == 8, sent
    first, *others = [await left_behind(sessionmaker, no) for no in sent.values()]
    assert first["events"] == ["submitted"] and first["deliveries"] == 1 and first["review_flag"] is None
    assert [c[0] for c in first["changes"]] == ["form.submitted"]
    for door, found in zip(list(sent)[1:], others, strict=True):
        assert found == first, f"{door} left {found}, the API left {first}"
    # WeChat was asked about the resident's text only (screening is for residents), once.
    assert fake_wechat.count(MSG_SEC_CHECK) == 1
    async with sessionmaker() as session:
        channels = dict((await session.execute(
            select(OpinionForm.tracking_no, OpinionForm.channel).where(OpinionForm.tracking_no.in_(sent.values()))
        )).all())
    assert channels[sent["wechat"]] == "wechat" and channels[sent["public page"]] != "wechat"


async def test_a_counted_form_is_counted_once_whatever_the_door(
        client: httpx.AsyncClient, sessionmaker: Any, fake_wechat: FakeWeChat) -> None:
    world = await build_world(sessionmaker)
    before = (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()["collected"]
    sent = await through_every_door(client, fake_wechat, sessionmaker)
    after = (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()["collected"]
    assert after - before == len(sent) == 8


async def test_a_retry_with_empty_or_absent_optional_fields_is_the_same_request(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    await build_world(sessionmaker)
    body = {"content": CONTENT, "category": CATEGORY}
    first = await client.post("/api/v1/forms", json=body, headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == 201
    # An older or newer client: optional fields absent, null, empty or blank, public left at its default.
    for again in ({**body, "location": None}, {**body, "location": "", "submitter_name": "  "},
                  {**body, "public": False}, {**body, "content": f"  {CONTENT} "}):
        replay = await client.post("/api/v1/forms", json=again, headers={"Idempotency-Key": "retry-1"})
        assert replay.status_code == 201, (again, replay.text)
        assert replay.headers.get("idempotent-replayed") == "true"
        assert replay.json()["tracking_no"] == first.json()["tracking_no"]
    # Another content, or a field given a value, is another request.
    for other in ({**body, "content": CONTENT + "又及。"}, {**body, "location": "菜场东侧"}, {**body, "public": True}):
        assert_problem(await client.post("/api/v1/forms", json=other, headers={"Idempotency-Key": "retry-1"}),
                       422, code="idempotency_key_reused")
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 1


async def test_one_key_through_two_doors_is_two_requests(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    """The representative's key is his (user:<id>) at the API and at his page alike, but each door answers in
    its own shape: the same key sent through the other door is refused, never replayed in the wrong shape."""
    world = await build_world(sessionmaker)
    body = {"content": CONTENT, "category": CATEGORY, "workroom_code": "LS-01"}
    api = await client.post("/api/v1/forms", json=body, headers={**world.auth("rep"), "Idempotency-Key": "both"})
    assert api.status_code == 201
    csrf = await sign_in(client, "rep")
    page = await client.post("/rep/forms", data={"content": CONTENT, "category": CATEGORY, "source": "w:LS-01",
                                                 "csrf_token": csrf},
                             headers={"Accept": "application/json", "Idempotency-Key": "both"})
    assert page.status_code == 422 and "form" in page.json()["errors"], page.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 1


def test_the_fingerprint_leaves_out_defaults_and_what_screening_adds() -> None:
    base = Submission(content=CONTENT, category=CATEGORY)
    same = [Submission(content=CONTENT, category=CATEGORY, location="", submitter_name=" "),
            Submission(content=f" {CONTENT}\n", category=CATEGORY, public=False),
            Submission(content=CONTENT, category=CATEGORY, review_flag="review", content_check={"suggest": "review"})]
    for other in same:
        assert intake.fingerprint("api", other) == intake.fingerprint("api", base)
    for other in (Submission(content=CONTENT, category=None), Submission(content=CONTENT, category=CATEGORY, public=True),
                  Submission(content=CONTENT, category=CATEGORY, latitude=31.6)):
        assert intake.fingerprint("api", other) != intake.fingerprint("api", base)
    assert intake.fingerprint("api", base) != intake.fingerprint("rep", base)


async def test_a_retry_of_a_request_first_sent_before_the_front_door_still_replays(
        client: httpx.AsyncClient, sessionmaker: Any, settings: Settings) -> None:
    """A phone's form sent just before this upgrade, its answer lost, retried just after: its key was kept
    with the door's old fingerprint (the validated body as JSON), and the retry is still that request."""
    world = await build_world(sessionmaker)
    body = {"content": CONTENT, "category": CATEGORY}
    first = await client.post("/api/v1/forms", json=body, headers=world.auth("rep"))
    assert first.status_code == 201
    scope, key = f"user:{world.user_ids['rep']}", "sent-before-the-upgrade"
    old_fingerprint = idempotency_service.request_hash(FormCreate.model_validate(body).model_dump(mode="json"))
    async with transaction(sessionmaker) as session:
        assert await idempotency_service.claim(session, scope=scope, key=key, request_hash=old_fingerprint,
                                               secret_key=settings.secret_key, ttl_seconds=3600) is None
        await idempotency_service.store(session, scope=scope, key=key, status_code=201, body=first.json(),
                                        secret_key=settings.secret_key)
    retry = await client.post("/api/v1/forms", json=body, headers={**world.auth("rep"), "Idempotency-Key": key})
    assert retry.status_code == 201 and retry.headers.get("idempotent-replayed") == "true", retry.text
    assert retry.json()["tracking_no"] == first.json()["tracking_no"]
    other = await client.post("/api/v1/forms", json={**body, "content": CONTENT + "又及。"},
                              headers={**world.auth("rep"), "Idempotency-Key": key})
    assert_problem(other, 422, code="idempotency_key_reused")
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 1
