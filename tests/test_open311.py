"""Open311 GeoReport v2 (docs/open311.md): discovery, services and their definitions, filing a request with
an API key, reading published forms as service requests; every resource in XML and in Spark JSON, every
refusal in the spec's error shape with the spec's status.

XML answers are read back the Spark way (``spark``) and compared with the JSON answer, so the two formats
are proven to carry the same data.
"""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jsonschema_rs
import pytest
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import joinedload

from app.api import open311 as open311_api
from app.services import open311 as open311_service
from app.db import transaction
from tests.support.apps import build_app
from app.models import Category, OpinionForm, Workroom, utcnow
from tests.conftest import make_settings
from tests.factories import World, act, answered_form, assigned_form, build_world, submit

BASE = "/open311/v2"
JURISDICTION = "luoshe.minyi.cn"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'
XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
W3 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FORM_URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}
# The spec's containers and the item each one repeats (GeoReport v2, "JSON and XML Conversion").
CONTAINERS = {
    "services": "service", "service_requests": "request", "attributes": "attribute", "values": "value",
    "endpoints": "endpoint", "formats": "format", "errors": "error",
}
SEEDED_SERVICES = ["urban_traffic", "environment", "public_security", "livelihood", "education_health",
                   "agriculture", "economy", "other"]
REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
]
# What every request carries; the others are left out when they have no value (never null, never empty).
ALWAYS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
          "service_notice", "requested_datetime", "updated_datetime", "address", "lat", "long"}


def assert_request_fields(names: list[str]) -> None:
    """The fields in the spec's order, the ones that always have a value all there."""
    assert names == [name for name in REQUEST_FIELDS if name in names], names
    assert ALWAYS <= set(names), ALWAYS - set(names)
CONTENT = "村口路灯坏了三盏，晚上走路看不清，请尽快修复。"
FILED = {
    "service_code": "urban_traffic", "lat": "31.6452", "long": "120.2061", "description": CONTENT,
    "attribute[workroom]": "LS-01", "attribute[public]": "true",
    "first_name": "三", "last_name": "张", "phone": "13912345678",
}


# --- reading the wire formats ------------------------------------------------------------------------


def spark(element: ET.Element) -> Any:
    """Our XML read the Spark way: a container of repeated children is a list, an element with children an
    object, a leaf its text, an empty leaf None."""
    children = list(element)
    if element.tag in CONTAINERS:
        assert all(child.tag == CONTAINERS[element.tag] for child in children), [c.tag for c in children]
        return [spark(child) for child in children]
    if children:
        tags = [child.tag for child in children]
        assert len(set(tags)) == len(tags), f"<{element.tag}> repeats a child outside a container: {tags}"
        return {child.tag: spark(child) for child in children}
    return element.text or None


def assert_same_data(xml_value: Any, json_value: Any, where: str = "$") -> None:
    """The XML (as Spark) and the JSON carry the same data: JSON booleans are XML's true/false, JSON
    numbers XML's text of the number, JSON null or "" an empty element."""
    if isinstance(json_value, dict):
        assert isinstance(xml_value, dict), (where, xml_value)
        assert list(xml_value) == list(json_value), (where, list(xml_value), list(json_value))
        for key, item in json_value.items():
            assert_same_data(xml_value[key], item, f"{where}.{key}")
    elif isinstance(json_value, list):
        assert isinstance(xml_value, list) and len(xml_value) == len(json_value), (where, xml_value)
        for index, (x, j) in enumerate(zip(xml_value, json_value, strict=True)):
            assert_same_data(x, j, f"{where}[{index}]")
    elif isinstance(json_value, bool):
        assert xml_value == ("true" if json_value else "false"), (where, xml_value, json_value)
    elif isinstance(json_value, (int, float)):
        assert xml_value is not None and float(xml_value) == json_value, (where, xml_value, json_value)
    elif json_value is None or json_value == "":
        assert xml_value is None, (where, xml_value)
    else:
        assert xml_value == json_value, (where, xml_value, json_value)


def assert_no_namespace(root: ET.Element) -> None:
    assert all("{" not in element.tag for element in root.iter()), "no element may carry a namespace"


def read_xml(response: httpx.Response, status: int = 200) -> ET.Element:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == XML_TYPE
    assert response.content.startswith(XML_DECLARATION), response.content[:80]
    root = ET.fromstring(response.content)
    assert_no_namespace(root)
    return root


def read_json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_TYPE
    return json.loads(response.content)


async def get_both(client: httpx.AsyncClient, resource: str, root: str, **params: Any) -> Any:
    """GET ``resource`` as XML and as JSON; both well formed, the XML's root ``root``, the same data.
    Returns the JSON."""
    xml_root = read_xml(await client.get(f"{BASE}/{resource}.xml", params=params))
    assert xml_root.tag == root
    answer = read_json(await client.get(f"{BASE}/{resource}.json", params=params))
    assert_same_data(spark(xml_root), answer)
    return answer


def assert_error(response: httpx.Response, status: int) -> str:
    """The spec's error shape, in the format the path's extension asks for (XML unless .json), with the
    HTTP status as its code. Returns the (first) description."""
    assert response.status_code == status, (response.status_code, response.text)
    if response.request.url.path.endswith(".json"):
        body = read_json(response, status)
        assert isinstance(body, list) and body, body
        for error in body:
            assert list(error) == ["code", "description"], error
            assert error["code"] == status and not isinstance(error["code"], bool), error
            assert isinstance(error["description"], str) and error["description"].strip(), error
        return body[0]["description"]
    root = read_xml(response, status)
    assert root.tag == "errors" and len(root), response.text
    for error in root:
        assert error.tag == "error"
        assert [child.tag for child in error] == ["code", "description"], response.text
        assert error.findtext("code") == str(status)
        assert (error.findtext("description") or "").strip()
    return root[0].findtext("description") or ""


# --- acting on Minyi ---------------------------------------------------------------------------------


@pytest.fixture
async def world(sessionmaker) -> World:  # type: ignore[no-untyped-def]
    return await build_world(sessionmaker)


async def new_key(client: httpx.AsyncClient, world: World, scopes: tuple[str, ...] = ("forms:write",),
                  **fields: Any) -> dict[str, Any]:
    """An API client created by the admin; its JSON, with the key shown once."""
    response = await client.post("/api/v1/api-clients", json={"name": "市民随手拍平台", "scopes": list(scopes), **fields},
                                 headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    return response.json()


def encoded(fields: dict[str, Any] | list[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(fields, dict):
        return [(k, v) for k, v in fields.items() if v is not None]
    return fields


async def file(client: httpx.AsyncClient, fields: dict[str, Any] | list[tuple[str, str]], fmt: str = "json",
               headers: dict[str, str] | None = None) -> httpx.Response:
    """POST requests.{fmt}, form-urlencoded; ``fields`` a dict (None leaves a field out) or pairs (repeats)."""
    return await client.post(f"{BASE}/requests.{fmt}", content=urlencode(encoded(fields)),
                             headers={**FORM_URLENCODED, **(headers or {})})


async def form_count(sessionmaker: Any) -> int:
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


async def stored_form(sessionmaker: Any, tracking_no: str) -> OpinionForm:
    async with transaction(sessionmaker) as session:
        form = (await session.scalars(
            select(OpinionForm).where(OpinionForm.tracking_no == tracking_no)
            .options(joinedload(OpinionForm.category), joinedload(OpinionForm.workroom))
        )).unique().one()
        session.expunge(form)
        return form


async def closed_form(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    form = await answered_form(client, world, **fields)
    response = await act(client, world, "coordinator", form["id"], "close", {"satisfaction": "satisfied"})
    assert response.status_code == 200, response.text
    return response.json()


async def declined_form(client: httpx.AsyncClient, world: World, reason: str = "重复提交。", **fields: Any) -> dict[str, Any]:
    form = await submit(client, **fields)
    response = await act(client, world, "coordinator", form["id"], "decline", {"reason": reason})
    assert response.status_code == 200, response.text
    return response.json()


async def set_submitted_at(sessionmaker: Any, form_id: int, at: datetime) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(update(OpinionForm).where(OpinionForm.id == form_id).values(submitted_at=at))


def utc_text(api_time: str) -> str:
    """An API time (+08:00) as Open311 shows it: UTC, whole seconds, Z."""
    return datetime.fromisoformat(api_time).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def one_request(client: httpx.AsyncClient, tracking_no: str) -> dict[str, Any]:
    (request,) = await get_both(client, f"requests/{tracking_no}", "service_requests")
    return request


# --- discovery ---------------------------------------------------------------------------------------


async def test_discovery_is_served_in_xml_and_json_with_the_endpoint(client, world):
    xml_answer = await client.get("/open311/discovery.xml")
    root = read_xml(xml_answer)
    assert root.tag == "discovery"
    endpoints = root.find("endpoints")
    assert endpoints is not None and [e.tag for e in endpoints] == ["endpoint"]
    formats = root.find("endpoints/endpoint/formats")
    assert formats is not None and [f.tag for f in formats] == ["format", "format"]

    answer = read_json(await client.get("/open311/discovery.json"))
    assert isinstance(answer, dict) and isinstance(answer["endpoints"], list)
    assert_same_data(spark(root), answer)
    assert W3.match(answer["changeset"]), answer["changeset"]
    assert answer["contact"].strip() and answer["key_service"].strip()
    (endpoint,) = answer["endpoints"]
    assert endpoint["specification"] == SPECIFICATION
    assert endpoint["url"].endswith("/open311/v2") and endpoint["url"].startswith("http")
    assert endpoint["changeset"] == answer["changeset"]
    assert endpoint["type"] == "production"  # MINYI_OPEN311_ENDPOINT_TYPE's default
    assert endpoint["formats"] == ["text/xml", "application/json"]


async def test_discovery_reads_its_texts_from_settings(db_url):
    settings = make_settings(db_url, open311_contact="洛社镇联络办 0510-12345678", open311_endpoint_type="test",
                             public_url="https://minyi.example.cn")
    application = build_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver") as http:
            answer = read_json(await http.get("/open311/discovery.json"))
    finally:
        await application.state.engine.dispose()
    assert answer["contact"] == "洛社镇联络办 0510-12345678"
    (endpoint,) = answer["endpoints"]
    assert endpoint["type"] == "test"
    assert endpoint["url"] == "https://minyi.example.cn/open311/v2"


async def _age_services(sessionmaker: Any) -> None:
    """Every category and workroom last changed long ago."""
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    async with transaction(sessionmaker) as session:
        await session.execute(update(Category).values(updated_at=long_ago))
        await session.execute(update(Workroom).values(updated_at=long_ago))


async def _changeset(client: httpx.AsyncClient) -> str:
    changeset = read_json(await client.get("/open311/discovery.json"))["changeset"]
    assert W3.match(changeset), changeset
    return changeset


async def test_the_changeset_moves_forward_when_an_admin_changes_a_category(client, sessionmaker, world):
    await _age_services(sessionmaker)
    before = await _changeset(client)
    response = await client.patch("/api/v1/categories/environment", json={"keywords": "垃圾,河道,噪声"},
                                  headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    after = await _changeset(client)
    assert after > before


async def test_the_changeset_moves_forward_when_an_admin_changes_a_workroom(client, sessionmaker, world):
    await _age_services(sessionmaker)
    before = await _changeset(client)
    response = await client.patch("/api/v1/workrooms/LS-02", json={"name": "石塘湾村党代表工作室（新址）"},
                                  headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert await _changeset(client) > before


# --- formats, paths, methods -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/open311/discovery.csv", f"{BASE}/services.csv", f"{BASE}/services/urban_traffic.csv",
    f"{BASE}/requests.csv", f"{BASE}/requests/LS20260001.html", f"{BASE}/tokens/abc.csv",
])
async def test_an_unknown_format_is_a_404_in_xml(client, path):
    response = await client.get(path)
    assert_error(response, 404)
    assert response.headers["content-type"] == XML_TYPE


@pytest.mark.parametrize("path", [f"{BASE}/nothing.json", f"{BASE}/nothing.xml", "/open311/v3/services.json",
                                  "/open311/", "/open311", f"{BASE}/services/a/b.json", f"{BASE}/requests"])
async def test_an_unknown_path_under_open311_is_a_404_in_the_error_shape(client, path):
    assert_error(await client.get(path), 404)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "requests.json", {"GET", "POST"}),
    ("DELETE", "requests.json", {"GET", "POST"}),
    ("PATCH", "requests.xml", {"GET", "POST"}),
    ("POST", "services.xml", {"GET"}),
    ("POST", "services/urban_traffic.json", {"GET"}),
    ("DELETE", "requests/LS20260001.json", {"GET"}),
    ("POST", "tokens/abc.xml", {"GET"}),
    ("OPTIONS", "requests.json", {"GET", "POST"}),
])
async def test_another_method_is_a_405_in_the_error_shape_with_allow(client, method, path, allowed):
    response = await client.request(method, f"{BASE}/{path}")
    assert_error(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} >= allowed
    assert not {m.strip() for m in response.headers["allow"].split(",")} & {"PUT", "PATCH", "DELETE"} - allowed


async def test_discovery_refuses_other_methods_too(client):
    response = await client.post("/open311/discovery.json")
    assert_error(response, 405)
    assert "GET" in response.headers["allow"]


# --- jurisdiction_id ---------------------------------------------------------------------------------


async def _jurisdiction_calls(client: httpx.AsyncClient, world: World, jurisdiction: str | None) -> list[httpx.Response]:
    """Every resource asked with ``jurisdiction`` (None: not sent)."""
    key = (await new_key(client, world))["key"]
    published = await submit(client, public=True)
    params = {} if jurisdiction is None else {"jurisdiction_id": jurisdiction}
    return [
        await client.get(f"{BASE}/services.xml", params=params),
        await client.get(f"{BASE}/services/urban_traffic.json", params=params),
        await client.get(f"{BASE}/requests.json", params=params),
        await client.get(f"{BASE}/requests/{published['tracking_no']}.xml", params=params),
        await file(client, {**FILED, "api_key": key, **params}),
    ]


@pytest.mark.parametrize("jurisdiction", [None, "", JURISDICTION])
async def test_the_configured_jurisdiction_absent_or_empty_is_served(client, world, sessionmaker, jurisdiction):
    answers = await _jurisdiction_calls(client, world, jurisdiction)
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 201], [a.text for a in answers]
    assert await form_count(sessionmaker) == 2


@pytest.mark.parametrize("jurisdiction", ["beijing.gov.cn", "LUOSHE.MINYI.CN", "luoshe.minyi.cn,other"])
async def test_another_jurisdiction_is_a_404_on_every_resource(client, world, sessionmaker, jurisdiction):
    answers = await _jurisdiction_calls(client, world, jurisdiction)
    for answer in answers:
        assert "jurisdiction" in assert_error(answer, 404)
    assert "jurisdiction" in assert_error(
        await client.get(f"{BASE}/tokens/abc.json", params={"jurisdiction_id": jurisdiction}), 404)
    assert await form_count(sessionmaker) == 1  # the published form made to read; nothing filed


async def test_another_jurisdiction_in_the_query_of_a_post_is_a_404(client, world, sessionmaker):
    key = (await new_key(client, world))["key"]
    response = await client.post(f"{BASE}/requests.xml?jurisdiction_id=elsewhere",
                                 content=urlencode({**FILED, "api_key": key}), headers=FORM_URLENCODED)
    assert_error(response, 404)
    assert await form_count(sessionmaker) == 0


async def test_a_custom_jurisdiction_from_settings_is_the_one_served(db_url):
    application = build_app(make_settings(db_url, open311_jurisdiction_id="wuxi.huishan.luoshe"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver") as http:
            ok = await http.get(f"{BASE}/services.json", params={"jurisdiction_id": "wuxi.huishan.luoshe"})
            assert ok.status_code == 200, ok.text
            ok = await http.get(f"{BASE}/requests.xml", params={"jurisdiction_id": "wuxi.huishan.luoshe"})
            assert ok.status_code == 200, ok.text
            assert_error(await http.get(f"{BASE}/services.json", params={"jurisdiction_id": JURISDICTION}), 404)
            assert_error(await http.get(f"{BASE}/requests.xml", params={"jurisdiction_id": JURISDICTION}), 404)
    finally:
        await application.state.engine.dispose()


# --- services ----------------------------------------------------------------------------------------


async def test_services_are_the_active_categories_in_order(client, world):
    services = await get_both(client, "services", "services")
    categories = (await client.get("/api/v1/categories")).json()["items"]
    assert [s["service_code"] for s in services] == [c["code"] for c in categories] == SEEDED_SERVICES
    for service, category in zip(services, categories, strict=True):
        assert list(service) == ["service_code", "service_name", "description", "metadata", "type", "keywords"]
        assert service["service_name"] == category["name"]
        assert service["description"] == category["description"]
        assert re.search(r"[\u4e00-\u9fff]", service["description"]), service  # seeded in Chinese
        assert service["keywords"] == category["keywords"] and "," in service["keywords"]
        assert service["metadata"] is True
        assert service["type"] == "realtime"
        assert "group" not in service  # Minyi's categories have no group: left out, not null
    traffic = services[0]
    assert traffic["service_name"] == "城建交通" and "路灯" in traffic["keywords"].split(",")


async def test_services_xml_leaves_out_the_group_it_does_not_have(client):
    root = read_xml(await client.get(f"{BASE}/services.xml"))
    for service in root:
        assert service.find("group") is None
        assert service.findtext("metadata") == "true"


async def test_a_deactivated_category_disappears_and_a_new_one_appears(client, world):
    response = await client.patch("/api/v1/categories/environment", json={"active": False}, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    response = await client.post("/api/v1/categories", json={
        "code": "elderly_care", "name": "养老服务", "due_days": 10,
        "description": "社区食堂、助浴、居家养老上门服务等方面的意见建议。", "keywords": "养老,助餐,助浴,适老化",
    }, headers=world.auth("admin"))
    assert response.status_code == 201, response.text

    services = await get_both(client, "services", "services")
    codes = [s["service_code"] for s in services]
    assert "environment" not in codes
    assert codes == [c for c in SEEDED_SERVICES if c != "environment"] + ["elderly_care"]
    new = services[-1]
    assert new["service_name"] == "养老服务"
    assert new["description"] == "社区食堂、助浴、居家养老上门服务等方面的意见建议。"
    assert new["keywords"] == "养老,助餐,助浴,适老化"
    assert_error(await client.get(f"{BASE}/services/environment.json"), 404)


async def test_a_service_definition_offers_the_workroom_and_consent_attributes(client, world):
    definition = await get_both(client, "services/urban_traffic", "service_definition")
    assert isinstance(definition, dict) and definition["service_code"] == "urban_traffic"
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert list(attributes) == ["workroom", "public"]
    orders = [a["order"] for a in definition["attributes"]]
    assert all(isinstance(o, int) and o >= 1 for o in orders) and len(set(orders)) == len(orders)

    workroom = attributes["workroom"]
    assert workroom["datatype"] == "singlevaluelist"
    assert workroom["required"] is False and workroom["variable"] is True
    assert workroom["order"] == 1
    assert workroom["description"].strip() and workroom["datatype_description"].strip()
    assert workroom["values"] == [{"key": "LS-01", "name": "镇区党代表工作室"},
                                  {"key": "LS-02", "name": "石塘湾村党代表工作室"}]

    public = attributes["public"]
    assert public["datatype"] == "singlevaluelist" and public["required"] is False
    assert public["order"] == 2
    assert [v["key"] for v in public["values"]] == ["true", "false"]
    assert all(v["name"].strip() for v in public["values"])


async def test_a_service_definition_lists_only_active_workrooms(client, world):
    response = await client.patch("/api/v1/workrooms/LS-02", json={"active": False}, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    definition = await get_both(client, "services/livelihood", "service_definition")
    (workroom,) = [a for a in definition["attributes"] if a["code"] == "workroom"]
    assert [v["key"] for v in workroom["values"]] == ["LS-01"]


async def test_an_unknown_or_inactive_service_definition_is_a_404(client, world):
    assert_error(await client.get(f"{BASE}/services/no_such_service.json"), 404)
    assert_error(await client.get(f"{BASE}/services/no_such_service.xml"), 404)
    response = await client.patch("/api/v1/categories/economy", json={"active": False}, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert_error(await client.get(f"{BASE}/services/economy.xml"), 404)
    assert_error(await client.get(f"{BASE}/services/economy.json"), 404)


# --- filing ------------------------------------------------------------------------------------------


async def test_filing_writes_the_form_and_answers_with_its_tracking_number(client, sessionmaker, world):
    writer = await new_key(client, world)
    response = await file(client, {**FILED, "api_key": writer["key"]})
    answer = read_json(response, 201)
    assert isinstance(answer, list) and len(answer) == 1
    (filed,) = answer
    assert list(filed) == ["service_request_id", "service_notice"]  # no accounts here: no account_id
    assert isinstance(filed["service_request_id"], str) and filed["service_request_id"]

    form = await stored_form(sessionmaker, filed["service_request_id"])
    assert form.channel == "other"
    assert form.api_client_id == writer["id"]
    assert form.content == CONTENT
    assert form.category is not None and form.category.code == "urban_traffic"
    assert form.workroom is not None and form.workroom.code == "LS-01"
    assert (form.latitude, form.longitude) == (31.6452, 120.2061)
    assert form.public is True
    assert form.submitter_name == "张三"
    assert form.submitter_phone == "13912345678"
    assert form.status == "submitted"

    # The notice carries the verification code, and the code opens Minyi's own tracking.
    match = re.search(r"查询码\s*(\w+)", filed["service_notice"])
    assert match, filed["service_notice"]
    assert filed["service_request_id"] in filed["service_notice"]
    tracked = await client.get(f"/api/v1/track/{filed['service_request_id']}", params={"code": match[1]})
    assert tracked.status_code == 200, tracked.text
    assert tracked.json()["tracking_no"] == filed["service_request_id"]
    wrong = await client.get(f"/api/v1/track/{filed['service_request_id']}", params={"code": "000000x"})
    assert wrong.status_code == 404


async def test_filing_answers_in_xml_too(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    root = read_xml(await file(client, {**FILED, "api_key": key}, fmt="xml"), 201)
    assert root.tag == "service_requests"
    (request,) = spark(root)
    assert list(request) == ["service_request_id", "service_notice"]
    assert (await stored_form(sessionmaker, request["service_request_id"])).content == CONTENT


async def test_a_filed_public_form_is_readable_and_a_private_one_is_not(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    public = read_json(await file(client, {**FILED, "api_key": key}), 201)[0]["service_request_id"]
    without = read_json(await file(client, {**FILED, "api_key": key, "attribute[public]": None}), 201)
    refused = read_json(await file(client, {**FILED, "api_key": key, "attribute[public]": "false"}), 201)
    private = [without[0]["service_request_id"], refused[0]["service_request_id"]]

    request = await one_request(client, public)
    assert request["service_request_id"] == public and request["description"] == CONTENT
    assert request["service_code"] == "urban_traffic" and request["status"] == "open"
    for tracking_no in private:
        assert_error(await client.get(f"{BASE}/requests/{tracking_no}.json"), 404)
        assert_error(await client.get(f"{BASE}/requests/{tracking_no}.xml"), 404)
        form = await stored_form(sessionmaker, tracking_no)  # written all the same
        assert form.public is False and form.content == CONTENT
    listed = [r["service_request_id"] for r in read_json(await client.get(f"{BASE}/requests.json"))]
    assert listed == [public]


@pytest.mark.parametrize("location", [
    {"address_string": "洛社镇石塘湾村村委会东侧"},
    {"address_id": "320206-LS-0042"},
])
async def test_an_address_alone_is_location_enough(client, sessionmaker, world, location):
    key = (await new_key(client, world))["key"]
    fields = {**FILED, "api_key": key, "lat": None, "long": None, **location}
    tracking_no = read_json(await file(client, fields), 201)[0]["service_request_id"]
    form = await stored_form(sessionmaker, tracking_no)
    assert form.latitude is None and form.longitude is None
    assert (form.location, form.address_id) == (location.get("address_string"), location.get("address_id"))
    request = await one_request(client, tracking_no)
    if "address_id" in location:
        assert request["address_id"] == "320206-LS-0042"
    else:
        assert request["address"] == "洛社镇石塘湾村村委会东侧"


async def test_the_x_api_key_header_works_instead_of_api_key(client, sessionmaker, world):
    writer = await new_key(client, world)
    response = await file(client, FILED, fmt="xml", headers={"X-API-Key": writer["key"]})
    root = read_xml(response, 201)
    tracking_no = root.findtext("request/service_request_id")
    assert tracking_no
    assert (await stored_form(sessionmaker, tracking_no)).api_client_id == writer["id"]


async def test_a_description_of_4000_characters_is_accepted(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    description = ("路" * 3999) + "。"
    tracking_no = read_json(await file(client, {**FILED, "api_key": key, "description": description}), 201)[0][
        "service_request_id"]
    assert (await stored_form(sessionmaker, tracking_no)).content == description


async def test_an_https_media_url_is_stored_and_shown(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    url = "https://img.example.cn/photos/2026/11/路灯.jpg?size=large"
    tracking_no = read_json(await file(client, {**FILED, "api_key": key, "media_url": url}), 201)[0][
        "service_request_id"]
    assert (await stored_form(sessionmaker, tracking_no)).media_url == url
    assert (await one_request(client, tracking_no))["media_url"] == url


async def test_names_in_latin_letters_are_kept_in_their_order(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    fields = {**FILED, "api_key": key, "first_name": "John", "last_name": "Smith"}
    tracking_no = read_json(await file(client, fields), 201)[0]["service_request_id"]
    assert (await stored_form(sessionmaker, tracking_no)).submitter_name == "John Smith"


async def test_email_device_id_and_account_id_are_accepted_and_kept_nowhere(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    fields = {**FILED, "api_key": key, "email": "zhangsan@example.cn", "device_id": "dev-123", "account_id": "acc-9"}
    tracking_no = read_json(await file(client, fields), 201)[0]["service_request_id"]
    form = await stored_form(sessionmaker, tracking_no)
    stored = " ".join(str(getattr(form, c.key)) for c in OpinionForm.__table__.columns)
    assert "zhangsan@example.cn" not in stored and "dev-123" not in stored and "acc-9" not in stored


LONG = "路" * 4001

# (why, the fields changed from FILED (None drops one), or raw pairs / body, the status)
REFUSALS: list[tuple[str, Any, int]] = [
    ("no location", {"lat": None, "long": None}, 400),
    ("lat without long", {"long": None}, 400),
    ("long without lat", {"lat": None}, 400),
    ("lat not a number", {"lat": "abc"}, 400),
    ("lat beyond 90", {"lat": "95"}, 400),
    ("long nan", {"long": "nan"}, 400),
    ("long infinite", {"long": "inf"}, 400),
    ("long beyond 180", {"long": "-180.5"}, 400),
    ("missing api_key", {"api_key": None}, 403),
    ("wrong api_key", {"api_key": "mk_" + "x" * 43}, 403),
    ("unknown service_code", {"service_code": "no_such_service"}, 404),
    # The service is checked first: an unknown one is 404 whatever else is missing (the checkers send none).
    ("unknown service_code and nothing else", {**{name: None for name in FILED}, "service_code": "no_such_service"},
     404),
    ("unknown service_code, no description", {"service_code": "no_such_service", "description": None}, 404),
    ("unknown service_code, no location", {"service_code": "no_such_service", "lat": None, "long": None}, 404),
    ("unknown service_code without api_key", {"service_code": "no_such_service", "api_key": None}, 403),
    ("missing service_code", {"service_code": None}, 400),
    ("empty service_code", {"service_code": ""}, 400),
    ("missing description", {"description": None}, 400),
    ("blank description", {"description": "   "}, 400),
    ("description over 4000", {"description": LONG}, 400),
    ("control characters in the description", {"description": "路灯坏了\x01"}, 400),
    ("unknown attribute", {"attribute[colour]": "red"}, 400),
    ("malformed attribute name", {"attribute[workroom": "LS-01"}, 400),
    ("unknown workroom", {"attribute[workroom]": "LS-99"}, 400),
    ("public neither true nor false", {"attribute[public]": "maybe"}, 400),
    ("bad phone", {"phone": "call me"}, 400),
    ("javascript media_url", {"media_url": "javascript:x"}, 400),
    ("data media_url", {"media_url": "data:text/html,<script>alert(1)</script>"}, 400),
    ("first_name too long", {"first_name": "三" * 33}, 400),
]


@pytest.mark.parametrize(("why", "changes", "status"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_a_refused_filing_writes_nothing(client, sessionmaker, world, why, changes, status):
    key = (await new_key(client, world))["key"]
    before = await form_count(sessionmaker)
    for fmt in ("json", "xml"):
        assert_error(await file(client, {**FILED, "api_key": key, **changes}, fmt=fmt), status)
    assert await form_count(sessionmaker) == before == 0


@pytest.mark.parametrize("scopes", [("stats:read",), ("forms:read",), ("forms:read", "stats:read", "webhooks")])
async def test_a_key_without_forms_write_is_a_403(client, sessionmaker, world, scopes):
    key = (await new_key(client, world, scopes))["key"]
    for fmt in ("json", "xml"):
        assert_error(await file(client, {**FILED, "api_key": key}, fmt=fmt), 403)
    assert await form_count(sessionmaker) == 0


async def test_a_revoked_key_is_a_403(client, sessionmaker, world):
    writer = await new_key(client, world)
    read_json(await file(client, {**FILED, "api_key": writer["key"]}), 201)  # works, and is cached now
    response = await client.delete(f"/api/v1/api-clients/{writer['id']}", headers=world.auth("admin"))
    assert response.status_code == 204
    for fmt in ("json", "xml"):
        assert_error(await file(client, {**FILED, "api_key": writer["key"]}, fmt=fmt), 403)
        assert_error(await file(client, FILED, fmt=fmt, headers={"X-API-Key": writer["key"]}), 403)
    assert await form_count(sessionmaker) == 1


@pytest.mark.parametrize(("why", "pairs"), [
    ("two workrooms as a multi-value list", [("attribute[workroom][]", "LS-01"), ("attribute[workroom][]", "LS-02")]),
    ("the workroom attribute sent twice", [("attribute[workroom]", "LS-01"), ("attribute[workroom]", "LS-02")]),
    ("description sent twice", [("description", CONTENT), ("description", "另一条意见。")]),
    ("service_code sent twice", [("service_code", "urban_traffic"), ("service_code", "environment")]),
    ("lat sent twice", [("lat", "31.6"), ("lat", "31.7")]),
    ("api_key sent twice", [("api_key", "KEY"), ("api_key", "KEY")]),
])
async def test_a_repeated_single_argument_is_a_400(client, sessionmaker, world, why, pairs):
    key = (await new_key(client, world))["key"]
    names = {name for name, _ in pairs}
    base = [(k, v) for k, v in {**FILED, "api_key": key}.items() if k not in names and not k.startswith("attribute[workroom")]
    pairs = [(k, key if v == "KEY" else v) for k, v in pairs]
    for fmt in ("json", "xml"):
        assert_error(await file(client, base + pairs, fmt=fmt), 400)
    assert await form_count(sessionmaker) == 0


async def test_a_client_over_its_rate_limit_is_a_429_in_the_error_shape(client, sessionmaker, world):
    key = (await new_key(client, world, rate_limit_per_minute=1))["key"]
    read_json(await file(client, {**FILED, "api_key": key}), 201)
    for fmt in ("json", "xml"):
        response = await file(client, {**FILED, "api_key": key}, fmt=fmt)
        assert_error(response, 429)
        assert int(response.headers["retry-after"]) >= 1
    assert await form_count(sessionmaker) == 1


async def test_a_json_body_is_a_400(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    for fmt in ("json", "xml"):
        response = await client.post(f"{BASE}/requests.{fmt}", json={**FILED, "api_key": key})
        assert_error(response, 400)
    response = await client.post(f"{BASE}/requests.json", content=urlencode({**FILED, "api_key": key}),
                                 headers={"Content-Type": "text/plain"})
    assert_error(response, 400)
    assert await form_count(sessionmaker) == 0


async def test_a_file_upload_is_a_400(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    response = await client.post(f"{BASE}/requests.json", data={**FILED, "api_key": key},
                                 files={"media": ("photo.jpg", b"\xff\xd8\xff" + b"0" * 100, "image/jpeg")})
    assert_error(response, 400)
    assert await form_count(sessionmaker) == 0


async def test_a_multipart_form_without_files_is_accepted(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    response = await client.post(f"{BASE}/requests.json", data={**FILED, "api_key": key},
                                 files={"unused": (None, "x")})  # forces multipart, no file part
    tracking_no = read_json(response, 201)[0]["service_request_id"]
    assert (await stored_form(sessionmaker, tracking_no)).content == CONTENT


async def test_empty_optional_arguments_mean_not_sent(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    fields = {**FILED, "api_key": key, "phone": "", "media_url": "", "first_name": "", "last_name": "",
              "attribute[workroom]": "", "address_id": "", "jurisdiction_id": ""}
    tracking_no = read_json(await file(client, fields), 201)[0]["service_request_id"]
    form = await stored_form(sessionmaker, tracking_no)
    assert form.submitter_phone is None and form.media_url is None and form.submitter_name is None
    assert form.workroom is None and form.address_id is None


# --- reading -----------------------------------------------------------------------------------------


async def test_only_public_forms_are_listed_newest_first(client, world):
    made = []
    for n, public in enumerate([True, False, True, False, True]):
        made.append((await submit(client, public=public, content=f"第{n}条意见：路面坑洼。"), public))
    published = [form["tracking_no"] for form, public in made if public]

    requests = await get_both(client, "requests", "service_requests")
    assert [r["service_request_id"] for r in requests] == published[::-1]
    for request in requests:
        assert_request_fields(list(request))
        assert isinstance(request["service_request_id"], str)
        assert request["status"] in ("open", "closed")
        for name in ("requested_datetime", "updated_datetime"):
            assert W3.match(request[name]), request[name]


async def test_a_request_shows_its_fields_with_the_spec_types(client, world):
    form = await submit(client, public=True, latitude=31.6452, longitude=120.2061, location="洛社镇万家塘路口",
                        workroom_code="LS-01")
    request = await one_request(client, form["tracking_no"])
    assert request["service_request_id"] == form["tracking_no"]
    assert request["service_name"] == "城建交通" and request["service_code"] == "urban_traffic"
    assert request["description"] == CONTENT
    assert request["requested_datetime"] == utc_text(form["submitted_at"])
    assert W3.match(request["updated_datetime"])
    assert request["service_notice"] and "15" in request["service_notice"]  # the category's due days
    assert request["address"] == "洛社镇万家塘路口"
    assert request["lat"] == 31.6452 and request["long"] == 120.2061
    assert isinstance(request["lat"], float) and isinstance(request["long"], float)
    assert not {"zipcode", "media_url", "address_id"} & set(request)  # no value: left out


async def test_a_submitted_form_is_open_and_collected(client, world):
    form = await submit(client, public=True)
    request = await one_request(client, form["tracking_no"])
    assert request["status"] == "open"
    assert request["status_notes"] == "已收集"
    assert "agency_responsible" not in request and "expected_datetime" not in request


async def test_an_assigned_form_names_the_unit_and_its_deadline(client, world):
    form = await assigned_form(client, world, "B", public=True)
    assert form["due_at"]
    request = await one_request(client, form["tracking_no"])
    assert request["status"] == "open"
    assert request["agency_responsible"] == "镇生态环境办"
    assert request["expected_datetime"] == utc_text(form["due_at"])
    assert W3.match(request["expected_datetime"])


async def test_an_answered_form_shows_the_reply_as_its_notes(client, world):
    form = await answered_form(client, world, public=True)
    request = await one_request(client, form["tracking_no"])
    assert request["status"] == "open"
    assert request["status_notes"] == "已安排维修，三日内完成。"
    assert request["agency_responsible"] == "镇城建办"


async def test_a_closed_form_is_closed_since_its_closing(client, world):
    form = await closed_form(client, world, public=True)
    request = await one_request(client, form["tracking_no"])
    assert request["status"] == "closed"
    assert request["updated_datetime"] == utc_text(form["closed_at"])
    assert request["status_notes"] == "已安排维修，三日内完成。"


async def test_a_declined_form_is_closed_with_the_reason(client, world):
    form = await declined_form(client, world, reason="该事项已由区交通局统一办理，重复提交。", public=True)
    request = await one_request(client, form["tracking_no"])
    assert request["status"] == "closed"
    assert request["status_notes"] == "该事项已由区交通局统一办理，重复提交。"
    assert request["updated_datetime"] == utc_text(form["declined_at"])


async def test_names_phones_and_internal_notes_never_appear(client, world):
    name, phone = "王秀英", "13900001111"
    note, reply_note = "内部备注：施工方是村支书亲戚，注意回避。", "费用由村集体垫付，暂不对外公开。"
    forms = [
        await submit(client, public=True, submitter_name=name, submitter_phone=phone, workroom_code="LS-01"),
        await assigned_form(client, world, public=True, submitter_name=name, submitter_phone=phone),
    ]
    response = await act(client, world, "coordinator", forms[1]["id"], "notes", {"note": note})
    assert response.status_code == 200, response.text
    response = await act(client, world, "coordinator", forms[1]["id"], "reply",
                         {"reply": "已安排维修。", "internal_note": reply_note})
    assert response.status_code == 200, response.text
    response = await act(client, world, "coordinator", forms[0]["id"], "notes", {"note": note})
    assert response.status_code == 200, response.text

    bodies = []
    for fmt in ("xml", "json"):
        bodies.append((await client.get(f"{BASE}/requests.{fmt}")).text)
        for form in forms:
            bodies.append((await client.get(f"{BASE}/requests/{form['tracking_no']}.{fmt}")).text)
        bodies.append((await client.get(f"{BASE}/requests.{fmt}",
                                        params={"service_request_id": ",".join(f["tracking_no"] for f in forms)})).text)
    assert all(form["tracking_no"] in bodies[0] for form in forms)  # both are listed
    for body in bodies:
        for secret in (name, phone, note, reply_note, "139****"):
            assert secret not in body, (secret, body[:300])


async def test_markup_in_the_content_reads_the_same_in_both_formats(client, world):
    content = '<b>路灯</b> & "引号" \'单引号\' ]]> <!-- 注释 --> 🚦'
    form = await submit(client, public=True, content=content)
    assert (await one_request(client, form["tracking_no"]))["description"] == content
    root = read_xml(await client.get(f"{BASE}/requests/{form['tracking_no']}.xml"))
    assert root.findtext("request/description") == content
    request = root.find("request")
    assert request is not None  # no element injected
    assert_request_fields([child.tag for child in request])


async def test_line_breaks_in_the_content_read_the_same_in_both_formats(client, world):
    content = "第一行：路灯坏了。\r\n第二行：请尽快修复。\r\n\t——村民"  # a textarea sends CRLF
    form = await submit(client, public=True, content=content)
    assert read_json(await client.get(f"{BASE}/requests/{form['tracking_no']}.json"))[0]["description"] == content
    root = read_xml(await client.get(f"{BASE}/requests/{form['tracking_no']}.xml"))
    assert root.findtext("request/description") == content


async def test_reads_may_be_fetched_from_any_web_page(client, world):
    form = await submit(client, public=True)
    for path in ("/open311/discovery.json", f"{BASE}/services.xml", f"{BASE}/services/other.json",
                 f"{BASE}/requests.json", f"{BASE}/requests/{form['tracking_no']}.xml"):
        response = await client.get(path)
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*", path


async def test_a_form_with_its_own_coordinates_shows_them(client, world):
    form = await submit(client, public=True, latitude=31.6, longitude=120.25, workroom_code="LS-01")
    request = await one_request(client, form["tracking_no"])
    assert (request["lat"], request["long"]) == (31.6, 120.25)


@pytest.mark.parametrize("coordinates", [{"latitude": 31.6}, {"longitude": 120.2}])
async def test_the_forms_api_wants_both_coordinates_or_neither(client, sessionmaker, world, coordinates):
    response = await client.post("/api/v1/forms", json={"content": CONTENT, "category": "urban_traffic", **coordinates})
    assert response.status_code == 422, response.text
    assert await form_count(sessionmaker) == 0


async def test_a_form_without_coordinates_takes_its_workrooms(client, world):
    response = await client.patch("/api/v1/workrooms/LS-01", json={"latitude": 31.6543, "longitude": 120.2134},
                                  headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    placed = await submit(client, public=True, workroom_code="LS-01", location="镇区菜场北门")
    unplaced = await submit(client, public=True, workroom_code="LS-01")
    elsewhere = await submit(client, public=True, workroom_code="LS-02")  # its workroom has no coordinates
    nowhere = await submit(client, public=True)

    request = await one_request(client, placed["tracking_no"])
    assert (request["lat"], request["long"]) == (31.6543, 120.2134)
    assert request["address"] == "镇区菜场北门"
    request = await one_request(client, unplaced["tracking_no"])
    assert (request["lat"], request["long"]) == (31.6543, 120.2134)
    assert "镇区党代表工作室" in request["address"] and "洛社镇" in request["address"]
    # Then the town's centre (MINYI_OPEN311_TOWN_*): every published request can be put on a map.
    town = (31.6523, 120.1921)
    request = await one_request(client, elsewhere["tracking_no"])
    assert (request["lat"], request["long"]) == town
    assert "石塘湾村党代表工作室" in request["address"]
    request = await one_request(client, nowhere["tracking_no"])
    assert (request["lat"], request["long"], request["address"]) == (*town, "无锡市惠山区洛社镇")


# --- filters -----------------------------------------------------------------------------------------


def ids(requests: list[dict[str, Any]]) -> list[str]:
    return [r["service_request_id"] for r in requests]


async def test_service_request_ids_override_the_other_filters(client, world):
    open_form = await submit(client, public=True)
    declined = await declined_form(client, world, public=True)
    private = await submit(client, public=False)
    wanted = [open_form["tracking_no"], declined["tracking_no"], private["tracking_no"], "LS20990001"]
    requests = await get_both(client, "requests", "service_requests", service_request_id=",".join(wanted),
                              status="closed", service_code="economy",
                              start_date="2020-01-01T00:00:00Z", end_date="2020-02-01T00:00:00Z")
    assert sorted(ids(requests)) == sorted([open_form["tracking_no"], declined["tracking_no"]])


async def test_service_request_ids_of_nothing_published_answer_an_empty_list(client, world):
    private = await submit(client, public=False)
    requests = await get_both(client, "requests", "service_requests",
                              service_request_id=f"{private['tracking_no']},NOPE")
    assert requests == []
    root = read_xml(await client.get(f"{BASE}/requests.xml", params={"service_request_id": "NOPE"}))
    assert root.tag == "service_requests" and len(root) == 0


async def test_service_codes_filter_by_category(client, world):
    traffic = await submit(client, public=True, category="urban_traffic")
    environment = await submit(client, public=True, category="environment")
    await submit(client, public=True, category="livelihood")
    requests = await get_both(client, "requests", "service_requests", service_code="urban_traffic,environment")
    assert ids(requests) == [environment["tracking_no"], traffic["tracking_no"]]
    requests = await get_both(client, "requests", "service_requests", service_code="economy")
    assert requests == []


async def test_status_filters_open_closed_and_both(client, world):
    submitted = await submit(client, public=True)
    answered = await answered_form(client, world, public=True)
    closed = await closed_form(client, world, public=True)
    declined = await declined_form(client, world, public=True)
    every = [declined["tracking_no"], closed["tracking_no"], answered["tracking_no"], submitted["tracking_no"]]

    assert ids(await get_both(client, "requests", "service_requests", status="open")) == [
        answered["tracking_no"], submitted["tracking_no"]]
    assert ids(await get_both(client, "requests", "service_requests", status="closed")) == [
        declined["tracking_no"], closed["tracking_no"]]
    assert ids(await get_both(client, "requests", "service_requests", status="open,closed")) == every
    assert ids(await get_both(client, "requests", "service_requests", status="")) == every


async def test_dates_filter_by_requested_time_in_any_zone(client, sessionmaker, world):
    form = await submit(client, public=True)
    await set_submitted_at(sessionmaker, form["id"], datetime(2026, 10, 1, 4, 0, tzinfo=UTC))  # 12:00 in Luoshe
    tracking_no = form["tracking_no"]

    async def found(start: str, end: str) -> bool:
        return ids(await get_both(client, "requests", "service_requests", start_date=start, end_date=end)) == [tracking_no]

    assert await found("2026-10-01T03:30:00Z", "2026-10-01T04:30:00Z")
    assert await found("2026-10-01T11:00:00+08:00", "2026-10-01T13:00:00+08:00")
    assert await found("2026-09-01T00:00:00Z", "2026-10-01T04:00:00Z")  # both ends included
    # 05:00–11:59 in Luoshe is 21:00–03:59 UTC: before the form (read as UTC it would hold it).
    assert not await found("2026-10-01T05:00:00+08:00", "2026-10-01T11:59:00+08:00")
    assert not await found("2026-10-01T04:00:01Z", "2026-10-02T00:00:00Z")
    # One end alone: a window of 90 days from it.
    after = await get_both(client, "requests", "service_requests", start_date="2026-07-10T00:00:00Z")
    assert ids(after) == [tracking_no]
    before = await get_both(client, "requests", "service_requests", end_date="2026-12-25T00:00:00+08:00")
    assert ids(before) == [tracking_no]
    assert await get_both(client, "requests", "service_requests", start_date="2026-06-01T00:00:00Z") == []


@pytest.mark.parametrize("params", [
    {"start_date": "0001-01-01T00:00:00+01:00"},
    {"end_date": "9999-12-31T23:00:00-05:00"},
    {"start_date": "9999-12-31T00:00:00Z"},
    {"end_date": "0001-01-02T00:00:00Z"},
], ids=["start-before-year-1", "end-after-9999", "start-plus-90-days", "end-minus-90-days"])
async def test_a_date_at_the_edge_of_the_calendar_is_a_400_not_a_500(app, params):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for fmt in ("json", "xml"):
            assert_error(await http.get(f"{BASE}/requests.{fmt}", params=params), 400)


async def test_a_window_of_exactly_90_days_is_allowed(client, world):
    answer = await client.get(f"{BASE}/requests.json",
                              params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-04-01T00:00:00Z"})
    assert read_json(answer) == []


@pytest.mark.parametrize("params", [
    {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-04-01T00:00:01Z"},  # over 90 days
    {"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
    {"start_date": "2026-03-01T00:00:00Z", "end_date": "2026-02-01T00:00:00Z"},  # end before start
    {"start_date": "yesterday"},
    {"end_date": "2026-13-01T00:00:00Z"},
    {"start_date": "2026-01-01T25:00:00Z"},
    {"start_date": "2026-01-01T00:00:00"},  # no zone
    {"end_date": "2026-01-01T00:00:00", "start_date": "2025-12-01T00:00:00Z"},
    {"status": "foo"},
    {"status": "open,pending"},
    {"status": "OPEN"},
])
async def test_a_bad_filter_is_a_400(client, params):
    for fmt in ("json", "xml"):
        assert_error(await client.get(f"{BASE}/requests.{fmt}", params=params), 400)


async def test_a_date_filter_sent_twice_is_a_400(client):
    response = await client.get(f"{BASE}/requests.json?start_date=2026-01-01T00:00:00Z&start_date=2026-01-02T00:00:00Z")
    assert_error(response, 400)


async def test_the_default_window_is_the_last_90_days(client, sessionmaker, world):
    now = utcnow()
    old = await submit(client, public=True)
    await set_submitted_at(sessionmaker, old["id"], now - timedelta(days=91))
    recent = await submit(client, public=True)
    await set_submitted_at(sessionmaker, recent["id"], now - timedelta(days=89))
    fresh = await submit(client, public=True)

    assert ids(await get_both(client, "requests", "service_requests")) == [fresh["tracking_no"], recent["tracking_no"]]
    window = {"start_date": (now - timedelta(days=95)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end_date": (now - timedelta(days=85)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert ids(await get_both(client, "requests", "service_requests", **window)) == [
        recent["tracking_no"], old["tracking_no"]]
    # Asked for by its id, the old form is found whatever its age.
    assert ids(await get_both(client, "requests", "service_requests", service_request_id=old["tracking_no"])) == [
        old["tracking_no"]]
    assert (await one_request(client, old["tracking_no"]))["service_request_id"] == old["tracking_no"]


async def test_at_most_1000_requests_are_answered(client, sessionmaker, world):
    now = utcnow()
    rows = [{
        "tracking_no": f"OT{n:06d}", "verification_hash": "0" * 64, "content": f"第{n}条公开意见。",
        "channel": "other", "public": True, "status": "submitted",
        "submitted_at": now - timedelta(minutes=n), "submitted_on": (now - timedelta(minutes=n)).date(),
        "updated_at": now,
    } for n in range(1001)]
    async with transaction(sessionmaker) as session:
        await session.execute(insert(OpinionForm), rows)
    requests = read_json(await client.get(f"{BASE}/requests.json"))
    assert len(requests) == 1000
    assert ids(requests) == [f"OT{n:06d}" for n in range(1000)]  # the newest thousand
    root = read_xml(await client.get(f"{BASE}/requests.xml"))
    assert len(root) == 1000


# --- one request, tokens -----------------------------------------------------------------------------


async def test_one_request_is_wrapped_like_the_list(client, world):
    form = await submit(client, public=True)
    root = read_xml(await client.get(f"{BASE}/requests/{form['tracking_no']}.xml"))
    assert root.tag == "service_requests" and [child.tag for child in root] == ["request"]
    answer = read_json(await client.get(f"{BASE}/requests/{form['tracking_no']}.json"))
    assert isinstance(answer, list) and len(answer) == 1
    assert_request_fields(list(answer[0]))
    listed = read_json(await client.get(f"{BASE}/requests.json"))
    assert answer == listed


async def test_an_unpublished_request_answers_exactly_like_an_unknown_one(client, world):
    private = await submit(client, public=False)
    for fmt in ("json", "xml"):
        unknown = await client.get(f"{BASE}/requests/LS20990001.{fmt}")
        hidden = await client.get(f"{BASE}/requests/{private['tracking_no']}.{fmt}")
        assert_error(unknown, 404)
        assert_error(hidden, 404)
        assert hidden.headers["content-type"] == unknown.headers["content-type"]
        assert hidden.text.replace(private["tracking_no"], "ID") == unknown.text.replace("LS20990001", "ID")


@pytest.mark.parametrize("token", ["abc", "12345", "LS20260001"])
async def test_every_token_is_a_404_since_every_service_is_realtime(client, world, token):
    for fmt in ("json", "xml"):
        assert_error(await client.get(f"{BASE}/tokens/{token}.{fmt}"), 404)


# --- robustness --------------------------------------------------------------------------------------


HOSTILE_GETS = [
    f"{BASE}/requests.json?service_request_id={'x' * 30_000}",
    f"{BASE}/requests.xml?service_code={'y' * 30_000}",
    f"{BASE}/requests.json?service_request_id={','.join(['a'] * 1001)}",
    f"{BASE}/requests.json?status=open%00",
    f"{BASE}/requests.xml?jurisdiction_id=%00",
    f"{BASE}/services/%00.json",
    f"{BASE}/requests/%F0%9F%92%A9%E2%80%AE%00.xml",
    f"{BASE}/requests/%F0%9F%92%A9%E2%80%AE.json",
    f"{BASE}/requests/{'9' * 5000}.json",
    f"{BASE}/services/%FF%FE.xml",
    f"{BASE}/services/{'z' * 5000}.json",
    f"{BASE}/requests.json?start_date=%E2%80%AE2026-01-01T00:00:00Z",
    f"{BASE}/requests.xml?start_date=2026-01-01T00:00:00%2B99:99",
    f"{BASE}/requests.xml?end_date=9999999999-01-01T00:00:00Z",
    f"{BASE}/requests.json?jurisdiction_id=%ED%A0%80",
    f"{BASE}/requests.json?status=%FF%FF",
    f"{BASE}/tokens/{'t' * 10_000}.xml",
    f"/open311/discovery.{'j' * 5000}",
]


@pytest.mark.parametrize("url", HOSTILE_GETS, ids=range(len(HOSTILE_GETS)))
async def test_hostile_queries_get_the_error_shape_never_a_500(client, world, url):
    response = await client.get(url)
    assert response.status_code in (400, 403, 404), (response.status_code, response.text[:300])
    assert_error(response, response.status_code)


async def test_a_2_mb_post_is_refused_in_the_error_shape(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]
    for fmt in ("json", "xml"):
        response = await file(client, {**FILED, "api_key": key, "description": "路" * 700_000}, fmt=fmt)
        assert response.status_code in (400, 413), response.status_code
        assert_error(response, response.status_code)
    assert await form_count(sessionmaker) == 0


async def test_a_2_mb_chunked_post_is_refused_in_the_error_shape(client, sessionmaker, world):
    key = (await new_key(client, world))["key"]

    async def chunks() -> AsyncIterator[bytes]:
        yield urlencode({**FILED, "api_key": key}).encode() + b"&email="
        for _ in range(32):
            yield b"x" * 65536

    for fmt in ("json", "xml"):
        response = await client.post(f"{BASE}/requests.{fmt}", content=chunks(), headers=FORM_URLENCODED)
        assert "content-length" not in response.request.headers  # really sent chunked
        assert_error(response, 413)
    assert await form_count(sessionmaker) == 0


@pytest.mark.parametrize("changes", [
    {"service_code": "urban\x00traffic"}, {"attribute[work\x00room]": "LS-01"}, {"attribute[workroom]": "LS\x00-01"},
    {"jurisdiction_id": "luoshe\x00.minyi.cn"}, {"address_id": "\x00"}, {"phone": "139\x0012345678"},
])
async def test_nul_characters_in_a_post_are_refused_on_both_engines(client, sessionmaker, world, changes):
    key = (await new_key(client, world))["key"]
    for fmt in ("json", "xml"):
        response = await file(client, {**FILED, "api_key": key, **changes}, fmt=fmt)
        assert response.status_code in (400, 404), (response.status_code, response.text[:300])
        assert_error(response, response.status_code)
    assert await form_count(sessionmaker) == 0


@pytest.mark.parametrize("body", [
    b"description=%ED%A0%80%FF&service_code=urban_traffic&first_name=%00",  # and no location
    b"\xff\xfe\x00garbage=\x00\x01",
    b"&&&===&&&",
    b"attribute[" + b"[" * 5000 + b"]=x",
    b"attribute%5Bworkroom%5D%5B%5D%5B%5D=LS-01",
    "&".join(f"f{n}=v" for n in range(500)).encode(),
])
async def test_hostile_bodies_get_the_error_shape_never_a_500(client, sessionmaker, world, body):
    key = (await new_key(client, world))["key"]
    for fmt in ("json", "xml"):
        for headers in ({}, {"X-API-Key": key}):
            response = await client.post(f"{BASE}/requests.{fmt}", content=body, headers={**FORM_URLENCODED, **headers})
            assert response.status_code in (400, 403, 404), (response.status_code, response.text[:300])
            assert_error(response, response.status_code)
    assert await form_count(sessionmaker) == 0


# --- the official definitions ------------------------------------------------------------------------
# The public checkers (the open311/schema-validation repository's JSON Schemas and Swagger 2.0 definition,
# and the validators built on them) read every field against these types: a present field must have its
# type, so a field with no value is left out, never null. Transcribed from that Swagger's "definitions".

STRING, NUMBER, BOOLEAN = {"type": "string"}, {"type": "number"}, {"type": "boolean"}
DATETIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$"}
OFFICIAL = {
    "service": {"type": "object", "required": ["service_code", "service_name", "type"], "properties": {
        "service_code": STRING, "service_name": STRING, "description": STRING, "metadata": BOOLEAN,
        "type": {"enum": ["realtime", "batch", "blackbox"]}, "keywords": STRING, "group": STRING}},
    "service_definition": {"type": "object", "required": ["service_code", "attributes"], "properties": {
        "service_code": STRING, "attributes": {"type": "array", "items": {
            "type": "object", "required": ["variable", "code", "datatype", "required"], "properties": {
                "variable": BOOLEAN, "code": STRING, "required": BOOLEAN, "datatype_description": STRING,
                "datatype": {"enum": ["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]},
                "order": {"type": "integer", "minimum": 1}, "description": STRING,
                "values": {"type": "array", "items": {"type": "object", "required": ["key", "name"],
                                                      "properties": {"key": STRING, "name": STRING}}}}}}}},
    "request": {"type": "object", "required": ["service_request_id", "status", "service_code", "requested_datetime"],
                "properties": {
                    "service_request_id": STRING, "status": {"enum": ["open", "closed"]}, "status_notes": STRING,
                    "service_name": STRING, "service_code": STRING, "description": STRING,
                    "agency_responsible": STRING, "service_notice": STRING, "requested_datetime": DATETIME,
                    "updated_datetime": DATETIME, "expected_datetime": DATETIME, "address": STRING,
                    "address_id": STRING, "zipcode": STRING, "lat": NUMBER, "long": NUMBER,
                    "media_url": {"type": "string", "pattern": "^https?://"}}},
    "request_response": {"type": "object", "properties": {
        "service_request_id": STRING, "token": STRING, "service_notice": STRING, "account_id": STRING}},
}


def assert_official(kind: str, value: Any) -> None:
    errors = [str(error).splitlines()[0] for error in jsonschema_rs.validator_for(OFFICIAL[kind]).iter_errors(value)]
    assert not errors, (kind, errors, value)


def assert_no_empty_element(root: ET.Element) -> None:
    """XML's equivalent of a null: an element with neither text nor children. None may appear."""
    empty = [element.tag for element in root.iter() if not len(element) and not (element.text or "").strip()]
    assert not empty or empty == [root.tag], empty  # (an empty list itself is fine: <service_requests/>)


async def test_every_answer_passes_the_official_definitions_in_both_formats(client, sessionmaker, world):
    """A town with a request in every state, one with no location and no workroom, one with a photo URL:
    every field of every answer has the official type (JSON) and no element is empty (XML)."""
    await submit(client, public=True)  # no place, no workroom: the town's address and centre
    await submit(client, public=True, workroom_code="LS-02", location="洛社镇石塘湾村村委会东侧")
    await assigned_form(client, world, "B", public=True)
    await answered_form(client, world, public=True)
    await closed_form(client, world, public=True)
    await declined_form(client, world, public=True)
    key = (await new_key(client, world))["key"]
    filed = read_json(await file(client, {**FILED, "api_key": key, "media_url": "https://img.example.cn/1.jpg"}), 201)
    assert_official("request_response", filed[0])

    for service in read_json(await client.get(f"{BASE}/services.json")):
        assert_official("service", service)
        assert_official("service_definition", read_json(await client.get(f"{BASE}/services/{service['service_code']}.json")))
    requests = read_json(await client.get(f"{BASE}/requests.json"))
    assert len(requests) == 7
    for request in requests:
        assert_official("request", request)
        assert_official("request", read_json(await client.get(f"{BASE}/requests/{request['service_request_id']}.json"))[0])
    for path in ("services.xml", "services/urban_traffic.xml", "requests.xml",
                 f"requests/{requests[0]['service_request_id']}.xml"):
        assert_no_empty_element(read_xml(await client.get(f"{BASE}/{path}")))
    assert_no_empty_element(read_xml(await file(client, {**FILED, "api_key": key}, fmt="xml"), 201))


# --- cheap public reads ------------------------------------------------------------------------------


def statements_of(application: Any) -> list[str]:
    """Every SQL statement ``application`` sends from now on."""
    seen: list[str] = []
    event.listen(application.state.engine.sync_engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_rest: seen.append(statement))
    return seen


async def test_a_public_list_is_read_once_and_shows_only_the_mapped_columns(client, app, sessionmaker, world):
    first = await submit(client, public=True, submitter_name="张三", submitter_phone="13912345678")
    seen = statements_of(app)
    listed = read_json(await client.get(f"{BASE}/requests.json"))
    assert [r["service_request_id"] for r in listed] == [first["tracking_no"]]
    (query,) = [s for s in seen if "opinion_form" in s]
    # Only what a request shows: never a name, a phone, a note; no ORM loads of whole rows.
    for column in ("submitter_name", "submitter_phone", "internal_note", "verification_code"):
        assert column not in query, column
    # Asked again: answered from memory. One question asked three ways (order, repeats): one query.
    seen.clear()
    assert read_json(await client.get(f"{BASE}/requests.json")) == listed
    assert not [s for s in seen if "opinion_form" in s]
    for params in ({"status": "open,closed"}, {"status": "closed,open,open"}, {"status": ["closed", "open"]}):
        assert read_json(await client.get(f"{BASE}/requests.json", params=params)) == listed
    assert len([s for s in seen if "opinion_form" in s]) == 1
    seen.clear()
    for _ in range(3):
        assert read_json(await client.get(f"{BASE}/services.json"))
    assert len([s for s in seen if "category" in s]) == 1
    # Anything this process writes shows at once.
    second = await submit(client, public=True)
    ids = [r["service_request_id"] for r in read_json(await client.get(f"{BASE}/requests.json"))]
    assert ids == [second["tracking_no"], first["tracking_no"]]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_list_is_sent_as_it_is_read_and_then_served_whole_from_memory(client, app, world, monkeypatch, fmt):
    monkeypatch.setattr("app.services.open311.STREAM_BATCH", 2)  # five requests: three chunks
    filed = [await submit(client, public=True, content=f"第{n}处路灯不亮，\r\n晚上看不清。<b>&</b>") for n in range(5)]
    first = await client.get(f"{BASE}/requests.{fmt}")
    assert first.status_code == 200 and first.headers["content-type"] == (JSON_TYPE if fmt == "json" else XML_TYPE)
    assert "content-length" not in first.headers  # streamed: its length was not known when it started
    assert first.headers["access-control-allow-origin"] == "*"
    again = await client.get(f"{BASE}/requests.{fmt}")
    assert "content-length" in again.headers  # from memory, whole
    assert again.content == first.content
    listed = read_json(first) if fmt == "json" else spark(ET.fromstring(first.content))
    assert [r["service_request_id"] for r in listed] == [f["tracking_no"] for f in reversed(filed)]
    assert listed[0]["description"] == "第4处路灯不亮，\r\n晚上看不清。<b>&</b>"
    if fmt == "xml":
        assert first.content.startswith(XML_DECLARATION)


async def test_a_cached_list_is_compressed_once_for_the_clients_that_take_gzip(client, world, monkeypatch):
    made: list[int] = []
    compress = open311_api._gzip
    monkeypatch.setattr(open311_api, "_gzip", lambda content: made.append(len(content)) or compress(content))
    filed = [await submit(client, public=True, content=f"第{n}处路灯不亮，晚上看不清。") for n in range(6)]
    url = f"{BASE}/requests.json"
    streamed = await client.get(url, headers={"Accept-Encoding": "gzip"})  # compressed on the way
    plain = await client.get(url, headers={"Accept-Encoding": "identity"})  # from memory
    assert len(plain.content) > 1000 and "content-encoding" not in plain.headers
    assert streamed.content == plain.content and not made
    for accept in ("gzip", "gzip, deflate, br", "br;q=1, gzip;q=0.5"):
        packed = await client.get(url, headers={"Accept-Encoding": accept})
        assert packed.status_code == 200 and packed.headers["content-encoding"] == "gzip", accept
        assert packed.content == plain.content  # (httpx decodes it)
        assert int(packed.headers["content-length"]) < len(plain.content) / 2
        assert "Accept-Encoding" in packed.headers["vary"] and packed.headers["access-control-allow-origin"] == "*"
        assert packed.headers["content-type"] == JSON_TYPE
    assert made == [len(plain.content)]  # once for the entry, whoever asked
    refused = await client.get(url, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers and refused.content == plain.content
    # A write makes a new answer; its compressed form is made from it, never the old one's.
    newest = await submit(client, public=True)
    again = await client.get(url, headers={"Accept-Encoding": "gzip"})  # streamed again
    packed = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and packed.content == again.content
    assert [r["service_request_id"] for r in read_json(packed)] == [newest["tracking_no"]] + [
        f["tracking_no"] for f in reversed(filed)]
    assert len(made) == 2


async def test_gzip_clients_that_come_while_a_list_is_made_wait_for_its_one_compressed_copy(client, world, monkeypatch):
    """Each reader of the chunks compressed them for itself (~7 ms a reader of the default list, all at once)."""
    for n in range(6):
        await submit(client, public=True, content=f"第{n}处路灯不亮，晚上看不清。")
    made: list[int] = []
    compress = open311_api._gzip
    monkeypatch.setattr(open311_api, "_gzip", lambda content: made.append(len(content)) or compress(content))
    go = asyncio.Event()
    stream = open311_service.stream_requests

    async def held(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await go.wait()
        async for form in stream(*args, **kwargs):
            yield form

    monkeypatch.setattr(open311_service, "stream_requests", held)
    url = f"{BASE}/requests.json"
    first = asyncio.ensure_future(client.get(url, headers={"Accept-Encoding": "gzip"}))
    await asyncio.sleep(0.05)  # the first one's answer is being made
    late = [asyncio.ensure_future(client.get(url, headers={"Accept-Encoding": "gzip"})) for _ in range(8)]
    await asyncio.sleep(0.05)
    assert not any(answer.done() for answer in [first, *late])
    go.set()
    first_answer, *late_answers = await asyncio.gather(first, *late)
    assert "content-length" not in first_answer.headers  # the first streamed, compressed on the way
    for answer in late_answers:
        assert answer.headers["content-encoding"] == "gzip" and answer.content == first_answer.content
        assert int(answer.headers["content-length"]) < len(answer.content) / 2  # the cached copy, whole
    assert made == [len(first_answer.content)]


async def test_an_empty_list_streams_as_an_empty_container(client, world):
    assert read_json(await client.get(f"{BASE}/requests.json")) == []
    empty = await client.get(f"{BASE}/requests.xml")
    assert empty.content.startswith(XML_DECLARATION) and spark(ET.fromstring(empty.content)) == []


async def test_another_process_writes_show_within_the_cache_time(db_url):
    application = build_app(make_settings(db_url, open311_cache_seconds=0.5))
    other = create_async_engine(db_url)  # another process: its commits do not reach this one's cache
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver") as http:
            await build_world(application.state.sessionmaker)
            form = await submit(http, public=True)
            before = read_json(await http.get(f"{BASE}/requests/{form['tracking_no']}.json"))[0]
            async with other.begin() as connection:
                await connection.execute(update(OpinionForm).values(content="另一个进程改过的内容。"))
            assert read_json(await http.get(f"{BASE}/requests/{form['tracking_no']}.json"))[0] == before
            await asyncio.sleep(0.6)
            after = read_json(await http.get(f"{BASE}/requests/{form['tracking_no']}.json"))[0]
            assert after["description"] == "另一个进程改过的内容。"
    finally:
        await other.dispose()
        await application.state.engine.dispose()


async def test_reads_are_limited_per_ip_in_the_specs_error_shape(db_url):
    application = build_app(make_settings(db_url, open311_read_per_ip_per_minute=3))
    try:
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            world = await build_world(application.state.sessionmaker)
            for path in ("services.json", "requests.xml", "discovery.json"):
                prefix = "/open311/" if path.startswith("discovery") else f"{BASE}/"
                assert (await http.get(prefix + path)).status_code == 200
            for path in ("requests.json", "requests.xml"):
                response = await http.get(f"{BASE}/{path}")
                assert response.status_code == 429, response.text
                assert int(response.headers["retry-after"]) >= 1
                assert assert_error(response, 429)
            # Filing is limited per API key, not by the readers' share.
            key = (await new_key(http, world))["key"]
            read_json(await file(http, {**FILED, "api_key": key}), 201)
        other = httpx.ASGITransport(app=application, client=("203.0.113.8", 4000))
        async with httpx.AsyncClient(transport=other, base_url="http://testserver") as http:
            assert (await http.get(f"{BASE}/requests.json")).status_code == 200  # another IP has its own
    finally:
        await application.state.engine.dispose()
