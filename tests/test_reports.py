"""The brief (工作简报, issue 20.4): every number of ``GET /api/v1/reports/{period}`` equals the statistics API's
for the same ``from``/``to``; the sentences carry those numbers; the Word file and the PDF print them (the
PDF's pages kept as PNGs in tests/artifacts/); the office's draft (opening, typical cases) and its checks; a
year's file written by a background job with progress; the pages, without JavaScript."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from app.db import transaction
from app.models import Activity, OpinionForm
from app.services import forms as form_service
from app.services import reports as report_service
from app.services import similar_forms
from app.services.auth import ANONYMOUS
from app.services.forms import Submission
from tests.conftest import make_settings
from tests.factories import World, build_world
from tests.support.documents import docx_images, docx_text, pdf_fonts, pdf_text, pdf_to_pngs
from tests.support.logins import sign_in
from tests.support.problems import assert_problem
from tests.test_stats import Office, local

MONTH, PREVIOUS, YEAR = "2026-03", "2026-02", "2026"
NAME, PHONE = "王小明", "13912345678"
CASE_TEXT = f"我是{NAME}，电话{PHONE}。石塘湾村口三盏路灯坏了一个月，晚上老人出门看不清，请尽快修复。"
COUNT_FIELDS = (
    "collected", "assigned", "answered", "closed", "declined", "overdue", "answer_rate", "satisfied",
    "basically_satisfied", "unsatisfied", "satisfaction_rate", "on_time", "on_time_rate", "returned", "reopened",
    "avg_answer_working_days",
)


@pytest.fixture
def settings(db_url, tmp_path):
    return make_settings(db_url, export_dir=tmp_path / "exports")


# --- the town ----------------------------------------------------------------------------------------


async def submit_with_contact(sessionmaker, settings, when, **fields: Any) -> int:
    async with transaction(sessionmaker) as session:
        form, _code = await form_service.submit(
            session, principal=ANONYMOUS, settings=settings, now=when,
            data=Submission(content=CASE_TEXT, category="urban_traffic", workroom_code="LS-02",
                            submitter_name=NAME, submitter_phone=PHONE, **fields))
        return form.id


async def town(sessionmaker, settings) -> tuple[World, dict[str, int]]:
    """March 2026: six forms (closed, answered twice, in progress and overdue, waiting, declined) and two
    activities; February: two forms and an activity; April: a form and an activity, outside March."""
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    march = lambda day: local(date(2026, 3, day))  # noqa: E731
    forms = {
        "case": await submit_with_contact(sessionmaker, settings, march(3)),
        "answered": await office.submit(march(5), workroom="LS-01", category="environment"),
        "late": await office.submit(march(9), workroom="LS-02", category="environment"),
        "waiting": await office.submit(march(12), workroom="LS-02", category="livelihood"),
        "declined": await office.submit(march(20), category="urban_traffic", who=None),
        "spot": await office.submit(march(31), workroom="LS-01"),
        "february": await office.submit(local(date(2026, 2, 10)), workroom="LS-01"),
        "february2": await office.submit(local(date(2026, 2, 27)), workroom="LS-02"),
        "april": await office.submit(local(date(2026, 4, 1)), workroom="LS-01"),
    }
    for key in ("case", "answered", "late"):
        await office.assign(forms[key], unit="B" if key == "answered" else "A")
    await office.reply(forms["case"])
    await office.close(forms["case"], "satisfied")
    await office.reply(forms["answered"])
    await office.make_overdue(forms["late"])
    await office.decline(forms["declined"])
    await office.answer_on_spot(forms["spot"])
    await office.assign(forms["february"])
    await office.reply(forms["february"])
    async with transaction(sessionmaker) as session:
        for held_on, attendance, kind, room in ((date(2026, 3, 7), 30, "party_service", "LS-01"),
                                                (date(2026, 3, 21), 45, "market", "LS-02"),
                                                (date(2026, 2, 14), 12, "visit", "LS-01"),
                                                (date(2026, 4, 2), 99, "study", "LS-02")):
            session.add(Activity(kind=kind, title="活动", held_on=held_on, attendance=attendance,
                                 workroom_id=world.workrooms[room].id))
    return world, forms


async def stats(client: httpx.AsyncClient, world: World, view: str, first: str, last: str) -> Any:
    response = await client.get(f"/api/v1/stats/{view}", params={"from": first, "to": last},
                                headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    body = response.json()
    return body["items"] if "items" in body else body


async def report(client: httpx.AsyncClient, world: World, period: str = MONTH, who: str = "coordinator",
                 **params: str) -> httpx.Response:
    return await client.get(f"/api/v1/reports/{period}", params=params, headers=world.auth(who))


def assert_same_counts(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
    """Field by field: every field the statistics API answered (but its moment ``as_of``)."""
    fields = [k for k in theirs if k != "as_of"]
    assert fields, where
    for name in fields:
        assert ours[name] == theirs[name], f"{where}.{name}: report {ours[name]!r} != stats {theirs[name]!r}"


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --- the numbers -------------------------------------------------------------------------------------


async def test_every_number_of_the_brief_is_the_statistics_apis_and_the_word_file_prints_them(
        client, sessionmaker, settings):
    world, forms = await town(sessionmaker, settings)
    async with transaction(sessionmaker) as session:  # the forms' topics (the worker's job)
        await similar_forms.index_pending(session, settings=settings)
    body = (await report(client, world)).json()

    summary = await stats(client, world, "summary", "2026-03-01", "2026-03-31")
    assert_same_counts(body["summary"], summary, "summary")
    assert_same_counts(body["summary"]["current"], summary["current"], "summary.current")
    workrooms = await stats(client, world, "by-workroom", "2026-03-01", "2026-03-31")
    assert [w["workroom"] for w in body["workrooms"]] == [w["workroom"] for w in workrooms]
    for ours, theirs in zip(body["workrooms"], workrooms, strict=True):
        assert_same_counts(ours, theirs, f"workrooms[{theirs['workroom']}]")
    categories = await stats(client, world, "by-category", "2026-03-01", "2026-03-31")
    assert [c["category"] for c in body["categories"]] == [c["category"] for c in categories]
    for ours, theirs in zip(body["categories"], categories, strict=True):
        assert_same_counts(ours, theirs, f"categories[{theirs['category']}]")
    before = await stats(client, world, "summary", "2026-02-01", "2026-02-28")
    assert body["previous"]["period"]["key"] == PREVIOUS
    assert_same_counts(body["previous"]["summary"], before, "previous.summary")

    # The scenario itself, so that equal numbers are not equal by being empty.
    assert (summary["collected"], summary["answered"], summary["closed"], summary["declined"]) == (6, 3, 1, 1)
    assert summary["current"]["pending_triage"] == 1 and summary["overdue"] == 1 and before["collected"] == 2
    assert body["activities"] == {"activities": 2, "attendance": 75,
                                  "by_kind": {"party_service": 1, "market": 1, "visit": 0, "study": 0, "other": 0}}
    assert body["previous"]["activities"]["activities"] == 1 and body["months"] == []

    rate = f"{summary['answer_rate'] * 100:.1f}%"
    overview = body["paragraphs"]["overview"]
    assert overview.startswith(f"本月共收集意见征询表{summary['collected']}份，批办答复{summary['answered']}件，"
                               f"答复率{rate}；开展活动2场，参与群众75人次。"), overview
    assert rate == "50.0%" and f"已办结{summary['closed']}件" in overview and "不予受理1件" in overview
    assert body["paragraphs"]["comparison"].startswith("与上月相比，收集意见征询表增加4份（上月2份）")
    assert "逾期1件" in body["paragraphs"]["supervision"] and "待批办1件" in body["paragraphs"]["supervision"]
    assert body["opening_generated"] and body["opening"].startswith("2026年3月，")
    assert body["typical_cases"] == [] and body["period"]["label"] == "2026年3月"
    # Street lamps: all six of March's forms speak of them (twice in February; April's is not counted).
    topic = body["hot_topics"][0]
    assert (topic["count"], topic["previous"]) == (6, 2) and "路灯" in topic["keywords"], body["hot_topics"]
    assert f"{topic['count']}份" in body["paragraphs"]["hot_topics"]

    # The office features two cases and writes its own opening.
    opening = "三月，各工作室围绕春季道路整治收集群众意见。"
    saved = await client.put(f"/api/v1/reports/{MONTH}/draft", headers=world.auth("coordinator"),
                             json={"opening": opening, "featured_form_ids": [forms["case"], forms["answered"]]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["featured_form_ids"] == [forms["case"], forms["answered"]]
    body = (await report(client, world)).json()
    assert body["opening"] == opening and not body["opening_generated"]
    case = body["typical_cases"][0]
    assert case["form_id"] == forms["case"] and case["status"] == "closed" and "路灯坏了" in case["request"]
    assert "某某" in case["request"] and "[电话已隐去]" in case["request"]
    assert case["handling"] == "交镇城建办办理，已办结，回访满意。" and case["reply"] == "已修复。"
    assert NAME not in str(body) and PHONE not in str(body)
    # Another unit's handler reads the numbers, and only the featured case its unit holds.
    other = (await report(client, world, who="handler_b")).json()
    assert [c["form_id"] for c in other["typical_cases"]] == [forms["answered"]]
    assert_same_counts(other["summary"], body["summary"], "handler_b's summary")

    # Word: the sentences, a row per workroom, the cases, a chart, no name or phone.
    response = await report(client, world, format="docx")
    assert response.status_code == 200
    assert response.headers["content-type"] == report_service.MEDIA_TYPES["docx"]
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and 'filename="minyi-brief-2026-03.docx"' in disposition
    assert f"filename*=UTF-8''{quote('工作简报_2026年3月.docx')}" in disposition
    text = docx_text(response.content)
    for paragraph in (opening, body["paragraphs"]["overview"], body["paragraphs"]["comparison"],
                      body["paragraphs"]["supervision"], case["request"], case["reply"]):
        assert paragraph in text.splitlines() or f"诉求：{paragraph}" in text or f"答复：{paragraph}" in text, paragraph
    rows = {w["workroom"]: "\t".join([w["name"], str(w["collected"]), str(w["assigned"]), str(w["answered"]),
                                       f"{w['answer_rate'] * 100:.1f}%", str(w["closed"]),
                                       f"{w['satisfaction_rate'] * 100:.1f}%" if w["satisfied"] else "—"])
            for w in body["workrooms"]}
    assert rows["LS-02"] == "石塘湾村党代表工作室\t3\t2\t1\t33.3%\t1\t100.0%", rows  # the case, closed: satisfied
    for row in rows.values():
        assert row in text.splitlines(), row
    assert NAME not in text and PHONE not in text
    assert docx_images(response.content) >= 2  # the workrooms' and the categories' charts


# --- the office's draft ------------------------------------------------------------------------------


async def test_the_draft_refuses_what_cannot_be_a_typical_case_and_null_restores_the_generated_opening(
        client, sessionmaker, settings):
    world, forms = await town(sessionmaker, settings)
    url = f"/api/v1/reports/{MONTH}/draft"

    async def put(body: Any, who: str = "coordinator") -> httpx.Response:
        return await client.put(url, json=body, headers=world.auth(who))

    for ids, code in (([999_999], "unknown_form"), ([forms["case"], forms["case"]], "duplicate_case"),
                      ([forms["april"]], "case_after_period")):
        problem = assert_problem(await put({"featured_form_ids": ids}), 422, code)
        assert problem["errors"][0]["loc"][:2] == ["body", "featured_form_ids"], problem
    assert_problem(await put({"featured_form_ids": list(range(1, 12))}), 422, "validation_error")
    assert_problem(await put({"featured_form_ids": [2**40]}), 422, "validation_error")
    assert_problem(await put({"opening": "长" * 5001}), 422, "validation_error")
    assert_problem(await put({"opening": "\x00"}), 422, "validation_error")
    assert_problem(await put({"surprise": 1}), 422, "validation_error")
    for who in ("handler_a", "rep"):
        assert_problem(await put({"opening": "不该保存"}, who), 403)
    assert (await client.put(url, json={"opening": "x"})).status_code == 401

    # A form of an earlier month may be featured (answered in this one); the order is kept.
    saved = await put({"featured_form_ids": [forms["spot"], forms["february"]], "opening": "  自己写的开头。 "})
    assert saved.status_code == 200 and saved.json()["opening"] == "自己写的开头。"
    kept = await put({"opening": None})  # featured cases left out: kept as they were
    assert kept.json() == {**kept.json(), "opening": None, "featured_form_ids": [forms["spot"], forms["february"]]}
    body = (await report(client, world)).json()
    assert body["opening_generated"] and body["opening"].startswith("2026年3月，各党代表工作室")
    assert [c["form_id"] for c in body["typical_cases"]] == [forms["spot"], forms["february"]]
    # An integrator with stats:read: the JSON, with only the cases whose submitter agreed to publication.
    key = (await client.post("/api/v1/api-clients", json={"name": "区网格平台", "scopes": ["stats:read"]},
                             headers=world.auth("admin"))).json()["key"]
    integrator = {"X-API-Key": key}
    read = await client.get(f"/api/v1/reports/{MONTH}", headers=integrator)
    assert read.status_code == 200 and read.json()["typical_cases"] == []
    async with transaction(sessionmaker) as session:
        (await session.get(OpinionForm, forms["spot"])).public = True  # type: ignore[union-attr]
    read = await client.get(f"/api/v1/reports/{MONTH}", headers=integrator)
    assert [c["form_id"] for c in read.json()["typical_cases"]] == [forms["spot"]]
    assert_problem(await client.get(f"/api/v1/reports/{MONTH}?format=pdf", headers=integrator), 403, "json_only")
    assert_problem(await client.put(url, json={"opening": "x"}, headers=integrator), 403)
    assert (await put({"featured_form_ids": []})).json()["featured_form_ids"] == []
    assert (await put({"opening": "   "})).json()["opening"] is None

    # Periods: only 2026-11, 2026-Q4 and 2026 within 1900–2100, answered as problem+json, never a 500.
    for period in ("2026-13", "2026-00", "0001", "9999", "1899", "garbage", "2026-Q5", "2026-1", "26",
                   "x" * 5000, "%00", "２０２６", "2026-11-01"):
        assert_problem(await report(client, world, quote(period, safe="")), 422, "invalid_period")
        assert_problem(await client.put(f"/api/v1/reports/{quote(period, safe='')}/draft", json={},
                                        headers=world.auth("coordinator")), 422, "invalid_period")
    quarter = (await report(client, world, "2026-q1")).json()
    assert quarter["period"]["key"] == "2026-Q1" and [m["month"] for m in quarter["months"]] == [
        "2026-01", "2026-02", "2026-03"]
    assert (await report(client, world, "2100")).status_code == 200
    assert_problem(await report(client, world, format="xlsx"), 422, "validation_error")
    assert (await client.get(f"/api/v1/reports/{MONTH}")).status_code == 401


# --- a year's file in the background ------------------------------------------------------------------


async def test_a_years_brief_is_written_by_a_job_whose_progress_moves_then_downloads(
        client, sessionmaker, settings, db_engine, monkeypatch, app):
    world, _forms = await town(sessionmaker, settings)
    fmt = "pdf" if db_engine == "sqlite" else "docx"  # the PDF once per module: its text, fonts and pages
    reached, release = asyncio.Event(), asyncio.Event()
    update_job = report_service._update_job

    async def held(sessionmaker: Any, job_id: int, **values: Any) -> None:
        await update_job(sessionmaker, job_id, **values)
        if values.get("progress") == 3 and "status" not in values:  # the year's numbers and two months
            reached.set()
            await release.wait()

    monkeypatch.setattr(report_service, "_update_job", held)
    started = await client.post(f"/api/v1/reports/{YEAR}/jobs", json={"format": fmt},
                                headers=world.auth("coordinator"))
    assert started.status_code == 202, started.text
    job = started.json()
    assert started.headers["location"] == f"/api/v1/exports/{job['id']}"
    assert job["kind"] == "report" and job["status"] == "pending" and job["total"] == 2 + 12 + 3 + 1
    await asyncio.wait_for(reached.wait(), timeout=30)
    running = (await client.get(f"/api/v1/exports/{job['id']}", headers=world.auth("coordinator"))).json()
    assert running["status"] == "running" and running["progress"] == 3 and running["total"] == job["total"]
    assert_problem(await client.get(f"/api/v1/exports/{job['id']}/download", headers=world.auth("coordinator")),
                   409, "export_not_ready")
    release.set()
    await app.state.exports.join()
    done = (await client.get(f"/api/v1/exports/{job['id']}", headers=world.auth("coordinator"))).json()
    assert done["status"] == "done" and done["progress"] == done["total"], done
    assert_problem(await client.get(done["download_url"], headers=world.auth("handler_a")), 403)
    response = await client.get(done["download_url"], headers=world.auth("coordinator"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(report_service.MEDIA_TYPES[fmt])
    assert quote(f"工作简报_2026年.{fmt}") in response.headers["content-disposition"]

    body = (await report(client, world, YEAR)).json()
    monthly = {m["month"]: m for m in await stats(client, world, "monthly", "2026-01-01", "2026-12-31")}
    assert [m["month"] for m in body["months"]] == [f"2026-{n:02d}" for n in range(1, 13)]
    for month in body["months"]:
        theirs = monthly.get(month["month"]) or dict.fromkeys(COUNT_FIELDS, 0)  # a month with no form
        for name in COUNT_FIELDS:
            assert month[name] == theirs[name], (month["month"], name)
    assert body["months"][2]["activities"] == 2 and body["summary"]["collected"] == 9
    paragraphs = [body["paragraphs"][k] for k in ("overview", "comparison", "workrooms", "categories", "supervision")]
    assert body["paragraphs"]["overview"].startswith("本年度共收集意见征询表9份")
    if fmt == "pdf":
        text = squeezed(re.sub(r"第\s*\d+\s*页", "", pdf_text(response.content)))  # page footers amid a paragraph
        for paragraph in paragraphs:
            assert squeezed(paragraph) in text, paragraph
        assert "各月情况" in text and "镇区党代表工作室" in text
        fonts = pdf_fonts(response.content)
        assert fonts and all(f["emb"] == "yes" for f in fonts), fonts
        assert len(pdf_to_pngs(response.content, "report-2026")) >= 2
    else:
        text = docx_text(response.content)
        for paragraph in paragraphs:
            assert paragraph in text.splitlines(), paragraph
        assert docx_images(response.content) == 3  # months, workrooms, categories


# --- the pages ---------------------------------------------------------------------------------------


async def test_the_office_previews_edits_and_downloads_the_brief_without_javascript(client, sessionmaker, settings, app):
    world, forms = await town(sessionmaker, settings)
    token = await sign_in(client, "coordinator")

    picker = await client.get("/office/reports")
    assert picker.status_code == 200 and 'href="/office/reports/' in picker.text and "（上月）" in picker.text
    assert (await client.get("/office/reports", params={"period": "2026-q1"})).headers["location"] == \
        "/office/reports/2026-Q1"
    wrong = await client.get("/office/reports", params={"period": "2026-13"})
    assert wrong.status_code == 422 and "报告期“2026-13”无效" in wrong.text
    assert (await client.get("/office/reports/0001")).status_code == 422

    page = await client.get(f"/office/reports/{MONTH}")
    assert page.status_code == 200
    body = (await report(client, world)).json()
    assert body["paragraphs"]["overview"] in page.text and "镇区党代表工作室" in page.text
    assert f'value="{forms["case"]}"' in page.text and f'value="{forms["waiting"]}"' not in page.text
    assert NAME not in page.text and PHONE not in page.text
    assert f'/api/v1/reports/{MONTH}?format=docx' in page.text

    # The opening: saved (303 back), shown; too long: 422 with the message and the text kept.
    saved = await client.post(f"/office/reports/{MONTH}/opening", data={"csrf_token": token, "opening": "本月开头。"})
    assert saved.status_code == 303 and saved.headers["location"] == f"/office/reports/{MONTH}#opening"
    assert '<p data-block="opening">本月开头。</p>' in (await client.get(f"/office/reports/{MONTH}")).text
    long = "长" * 5001
    refused = await client.post(f"/office/reports/{MONTH}/opening", data={"csrf_token": token, "opening": long})
    assert refused.status_code == 422 and "最多 5000 字" in refused.text and long in refused.text
    refused = await client.post(f"/office/reports/{MONTH}/opening", data={"csrf_token": token, "opening": "a\x00b"})
    assert refused.status_code == 422 and "控制字符" in refused.text and "\x00" not in refused.text
    reset = await client.post(f"/office/reports/{MONTH}/opening",
                              data={"csrf_token": token, "opening": "x", "action": "reset"})
    assert reset.status_code == 303 and (await report(client, world)).json()["opening_generated"]

    # Typical cases: a checkbox and a tracking number typed in.
    async with transaction(sessionmaker) as session:
        february = (await session.get(OpinionForm, forms["february"])).tracking_no  # type: ignore[union-attr]
    saved = await client.post(f"/office/reports/{MONTH}/cases",
                              data={"csrf_token": token, "form_id": [str(forms["case"])], "tracking_no": february})
    assert saved.status_code == 303, saved.text
    assert (await report(client, world)).json()["featured_form_ids"] == [forms["case"], forms["february"]]
    shown = (await client.get(f"/office/reports/{MONTH}")).text
    assert "<dt>诉求</dt>" in shown and "某某" in shown and NAME not in shown
    refused = await client.post(f"/office/reports/{MONTH}/cases",
                                data={"csrf_token": token, "tracking_no": "LS-NOPE-1"})
    assert refused.status_code == 422 and "没有编号为 LS-NOPE-1" in refused.text and 'value="LS-NOPE-1"' in refused.text
    refused = await client.post(f"/office/reports/{MONTH}/cases",
                                data={"csrf_token": token, "form_id": [str(forms["april"])]})
    assert refused.status_code == 422 and "不能作为本期典型案例" in refused.text

    # A year: a job, its progress page (polled by htmx, refreshed by a link without scripts), the file.
    year = await client.get(f"/office/reports/{YEAR}")
    assert "生成 Word 文件" in year.text and "?format=docx" not in year.text
    started = await client.post(f"/office/reports/{YEAR}/jobs", data={"csrf_token": token, "format": "docx"})
    assert started.status_code == 303
    job_url = started.headers["location"]
    assert re.fullmatch(rf"/office/reports/{YEAR}/jobs/\d+", job_url)
    progress = await client.get(job_url)
    assert progress.status_code == 200 and 'id="report-job"' in progress.text
    await app.state.exports.join()
    finished = await client.get(job_url)
    link = re.search(r'href="(/api/v1/exports/\d+/download)"', finished.text)
    assert link and 'data-status="done"' in finished.text and "hx-trigger" not in finished.text
    polled = await client.get(job_url, headers={"HX-Request": "true"})  # htmx's refresh: the block alone
    assert polled.status_code == 200 and link.group(1) in polled.text and "<html" not in polled.text
    assert (await client.get(link.group(1))).status_code == 200
    assert (await client.get(job_url.replace(YEAR, "2025"))).status_code == 404
    bad = await client.post(f"/office/reports/{YEAR}/jobs", data={"csrf_token": token, "format": "xlsx"})
    assert bad.status_code == 422

    # The office's only.
    await sign_in(client, "handler_a", fresh=True)
    assert (await client.get("/office/reports")).status_code == 403
    assert (await client.get(f"/office/reports/{MONTH}")).status_code == 403


def test_personal_data_is_taken_out_of_excerpts() -> None:
    text = report_service.scrub(
        "王小明说：手机 139-1234-5678，座机 0510-83721234，身份证 32020219800101123X，+86 13912345678。",
        name="王小明")
    assert text == ("某某说：手机 [电话已隐去]，座机 [电话已隐去]，身份证 [身份证号已隐去]，[电话已隐去]。")
    assert report_service.excerpt("长" * 500).endswith("…") and len(report_service.excerpt("长" * 500)) == 160
    assert report_service.pct(0.8598) == "86.0%" and report_service.rate_change(0.5, 0.25) == "提高25.0个百分点"
