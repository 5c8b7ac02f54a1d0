"""Similar forms in the database (issue 19.2, 19.4; app/services/similar_forms.py): a form's most similar
forms through the API and on the office's form page, the "已有人反映过" hint while a form is written, and
the hot topics of the week and the month. The scorer itself is tested in tests/test_similarity.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.config import TZ
from app.db import transaction
from app.models import FormStatus, OpinionForm, utcnow
from app.models.similar import FormTerm, Topic, TopicMember
from app.services import similar_forms
from tests.factories import World, act, build_world, submit
from tests.support.logins import sign_in

LAMP_3 = ["三组村口的路灯坏了好几天，晚上黑乎乎的走路怕摔跤。", "3组路灯不亮了，晚上出门看不见，请尽快修一下。",
          "我们第三村民小组那边路灯一直不亮，老人晚上不敢出门。"]
LAMP_4 = "四组村口的路灯坏了好几天，晚上黑乎乎的走路怕摔跤。"
RUBBISH_3 = "三组村口的垃圾好几天没人清运，臭气熏天。"


@pytest.fixture
async def world(sessionmaker) -> World:  # type: ignore[no-untyped-def]
    return await build_world(sessionmaker)


async def index_all(app, sessionmaker) -> int:  # noqa: ANN001
    total = 0
    while done := await similar_forms.index_round(sessionmaker, app.state.settings):
        total += done
    return total


async def town(client, world, *, public: bool = True) -> dict[str, dict]:  # noqa: ANN001
    forms = {}
    for n, content in enumerate(LAMP_3):
        forms[f"lamp{n}"] = await submit(client, content=content, workroom_code="LS-01", public=public)
    forms["lamp_other_group"] = await submit(client, content=LAMP_4, workroom_code="LS-01", public=public)
    forms["rubbish"] = await submit(client, content=RUBBISH_3, workroom_code="LS-01", public=public)
    return forms


async def test_a_forms_similar_forms_are_the_same_issue_best_first(app, client, sessionmaker, world):
    forms = await town(client, world)
    assert await index_all(app, sessionmaker) == 5
    answer = await client.get(f"/api/v1/forms/{forms['lamp0']['id']}/similar", headers=world.auth("coordinator"))
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert {i["id"] for i in items} == {forms["lamp1"]["id"], forms["lamp2"]["id"]}  # not 四组, not the rubbish
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    first = items[0]
    assert set(first) >= {"id", "tracking_no", "score", "status", "workroom", "snippet", "merged_into"}
    assert first["status"] == "submitted" and first["workroom"] == "LS-01" and first["merged_into"] is None
    assert 0 < first["score"] <= 1 and first["snippet"] in LAMP_3[1:]
    # Closed forms are similar too.
    lamp1 = forms["lamp1"]["id"]
    assert (await act(client, world, "coordinator", lamp1, "decline", {"reason": "重复"})).status_code == 200
    again = (await client.get(f"/api/v1/forms/{forms['lamp0']['id']}/similar", headers=world.auth("coordinator"))).json()
    assert {i["id"]: i["status"] for i in again["items"]}[lamp1] == "declined"


async def test_similar_forms_keep_the_forms_lists_visibility(app, client, sessionmaker, world):
    forms = await town(client, world)
    await index_all(app, sessionmaker)
    lamp0, lamp1 = forms["lamp0"]["id"], forms["lamp1"]["id"]
    unit_a = world.units["A"].id
    assert (await act(client, world, "coordinator", lamp0, "assign", {"unit_id": unit_a})).status_code == 200
    # The unit sees its form, and among its similar forms only those it may see (none: the others are not its).
    seen = await client.get(f"/api/v1/forms/{lamp0}/similar", headers=world.auth("handler_a"))
    assert seen.status_code == 200 and seen.json()["items"] == []
    assert (await client.get(f"/api/v1/forms/{lamp1}/similar", headers=world.auth("handler_a"))).status_code == 403
    assert (await client.get(f"/api/v1/forms/{lamp0}/similar", headers=world.auth("handler_b"))).status_code == 403
    assert (await client.get(f"/api/v1/forms/{lamp0}/similar")).status_code == 401
    assert (await client.get("/api/v1/forms/999999/similar", headers=world.auth("admin"))).status_code == 404
    # The workroom's representative sees its forms.
    rep = (await client.get(f"/api/v1/forms/{lamp0}/similar", headers=world.auth("rep"))).json()["items"]
    assert {i["id"] for i in rep} == {lamp1, forms["lamp2"]["id"]}
    assert (await client.get(f"/api/v1/forms/{lamp0}/similar", headers=world.auth("rep2"))).status_code == 403


async def test_each_form_is_indexed_once_and_late_commits_are_not_skipped(app, client, sessionmaker, world):
    forms = await town(client, world)
    assert await index_all(app, sessionmaker) == 5
    assert await index_all(app, sessionmaker) == 0
    # A form whose row was committed after higher ids were indexed (a slow transaction) is still found.
    async with transaction(sessionmaker) as session:
        await session.execute(TopicMember.__table__.delete().where(TopicMember.form_id == forms["lamp1"]["id"]))
        await session.execute(FormTerm.__table__.delete().where(FormTerm.form_id == forms["lamp1"]["id"]))
    assert await index_all(app, sessionmaker) == 1
    async with transaction(sessionmaker) as session:
        topics = dict((await session.execute(select(TopicMember.form_id, TopicMember.topic_id))).all())
    lamps = {topics[forms[k]["id"]] for k in ("lamp0", "lamp1", "lamp2")}
    assert len(lamps) == 1  # one issue, one topic
    assert topics[forms["lamp_other_group"]["id"]] not in lamps and topics[forms["rubbish"]["id"]] not in lamps


@pytest.mark.parametrize("content", ["", "   ", "😀😀😀", "路" * 2000, "<script>alert(1)</script>", "\x01\x02"])
async def test_any_content_is_indexed_and_hinted_without_error(app, client, sessionmaker, world, content):
    async with transaction(sessionmaker) as session:
        now = utcnow()
        form = OpinionForm(tracking_no="LS-2026-999999", content=content, channel="web", status="submitted",
                           submitted_at=now, submitted_on=now.astimezone(TZ).date(), updated_at=now,
                           verification_hash="x")
        session.add(form)
    assert await index_all(app, sessionmaker) == 1
    hint = await client.get("/similar-hint", params={"content": content[:2000]})
    assert hint.status_code == 200 and 'id="similar-hint"' in hint.text


async def test_the_hint_shows_open_public_forms_of_the_same_workroom_only(app, client, sessionmaker, world):
    forms = await town(client, world)
    private = await submit(client, content=LAMP_3[0], workroom_code="LS-01", public=False,
                           submitter_name="王秘密", submitter_phone="13900001111")
    elsewhere = await submit(client, content=LAMP_3[1], workroom_code="LS-02", public=True)
    await index_all(app, sessionmaker)
    assert (await act(client, world, "coordinator", forms["lamp2"]["id"], "decline", {"reason": "重复"})).status_code == 200
    typed = "三组路灯坏了，晚上太黑了"
    hint = await client.get("/similar-hint", params={"content": typed, "workroom_code": "LS-01"})
    assert hint.status_code == 200 and hint.headers["cache-control"] == "no-store"
    assert "已有人反映过" in hint.text
    assert LAMP_3[0] in hint.text and LAMP_3[1] in hint.text  # open, public, this workroom
    assert LAMP_3[2] not in hint.text  # declined
    assert "王秘密" not in hint.text and "1390000" not in hint.text and forms["lamp0"]["tracking_no"] not in hint.text
    assert hint.text.count("<li>") == 2  # the private one and the other workroom's are not offered
    # A representative's page names its source; staff see forms that are not public too.
    await sign_in(client, "rep", fresh=True)
    staff = await client.get("/similar-hint", params={"content": typed, "source": "w:LS-01"})
    assert staff.text.count("<li>") == 3
    assert "王秘密" not in staff.text
    # Another workroom's representative sees only the public ones there, as the public does.
    await sign_in(client, "rep2", fresh=True)
    other = await client.get("/similar-hint", params={"content": typed, "source": "w:LS-01"})
    assert other.text.count("<li>") == 2
    assert private["id"] and elsewhere["id"]
    # Nothing similar, or too little typed: an empty hint.
    for other in ("学校门口早上堵车严重", "灯"):
        assert "<li>" not in (await client.get("/similar-hint", params={"content": other})).text


async def test_hot_topics_count_the_week_and_compare_with_the_week_before(app, client, sessionmaker, world):
    forms = await town(client, world)
    earlier = await submit(client, content="三组路灯坏了，晚上一片黑。", workroom_code="LS-02")
    async with transaction(sessionmaker) as session:  # received ten days ago: the week before this one
        await session.execute(update(OpinionForm).where(OpinionForm.id == earlier["id"])
                              .values(submitted_at=utcnow() - timedelta(days=10)))
    await index_all(app, sessionmaker)
    week = await client.get("/api/v1/stats/hot-topics", headers=world.auth("coordinator"))
    assert week.status_code == 200, week.text
    body = week.json()
    assert body["period"] == "week" and body["date_from"] < body["date_to"]
    (top,) = body["items"]  # only groups of two or more
    assert top["count"] == 3 and top["previous"] == 1 and top["trend"] == "up" and top["change"] == 2.0
    assert top["workrooms"] == ["镇区党代表工作室"] and top["keywords"]
    assert top["forms_url"] == f"/office/topics/{top['topic_id']}?period=week"
    month = (await client.get("/api/v1/stats/hot-topics", params={"period": "month"},
                              headers=world.auth("coordinator"))).json()
    assert month["items"][0]["count"] == 4 and set(month["items"][0]["workrooms"]) == {"镇区党代表工作室", "石塘湾村党代表工作室"}
    assert (await client.get("/api/v1/stats/hot-topics", params={"period": "year"},
                             headers=world.auth("coordinator"))).status_code == 422
    assert (await client.get("/api/v1/stats/hot-topics")).status_code == 401
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(Topic.size).where(Topic.id == top["topic_id"])) == 4
    assert forms


async def test_the_office_sees_similar_forms_hot_topics_and_a_topics_forms(app, client, sessionmaker, world):
    forms = await town(client, world)
    await index_all(app, sessionmaker)
    csrf = await sign_in(client, "coordinator", fresh=True)
    lead = forms["lamp0"]["id"]
    page = await client.get(f"/office/forms/{lead}")
    assert page.status_code == 200 and "相似意见（2）" in page.text
    assert forms["lamp1"]["tracking_no"] in page.text and forms["rubbish"]["tracking_no"] not in page.text
    # Ticked in the list, merged into this form.
    assert f'name="form_ids" value="{forms["lamp1"]["id"]}"' in page.text
    merged = await client.post(f"/office/forms/{lead}/merge",
                               data={"form_ids": [forms["lamp1"]["id"]], "csrf_token": csrf})
    assert merged.status_code == 303 and merged.headers["location"] == f"/office/forms/{lead}"
    follower = await client.get(f"/api/v1/forms/{forms['lamp1']['id']}", headers=world.auth("coordinator"))
    assert follower.json()["merged_into"] == lead
    dashboard = await client.get("/office")
    assert "热点话题" in dashboard.text and "3 份" in dashboard.text
    async with transaction(sessionmaker) as session:
        topic_id = await session.scalar(select(TopicMember.topic_id).where(TopicMember.form_id == forms["lamp0"]["id"]))
        assert await session.scalar(select(func.count()).select_from(TopicMember)
                                    .where(TopicMember.topic_id == topic_id)) == 3
    listed = await client.get(f"/office/topics/{topic_id}", params={"period": "week"})
    assert listed.status_code == 200
    assert all(forms[k]["tracking_no"] in listed.text for k in ("lamp0", "lamp1", "lamp2"))
    assert forms["rubbish"]["tracking_no"] not in listed.text
    assert (await client.get("/office/topics/999999")).status_code == 404
    # A unit sees only its own forms of the topic.
    await act(client, world, "coordinator", forms["lamp0"]["id"], "assign", {"unit_id": world.units["A"].id})
    await sign_in(client, "handler_a", fresh=True)
    mine = await client.get(f"/office/topics/{topic_id}")
    # (lamp1 follows lamp0, so it is the unit's too; lamp2 is not.)
    assert forms["lamp0"]["tracking_no"] in mine.text and forms["lamp1"]["tracking_no"] in mine.text
    assert forms["lamp2"]["tracking_no"] not in mine.text and "已合并" in mine.text
    assert FormStatus.submitted
