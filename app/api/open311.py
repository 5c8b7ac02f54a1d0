"""Open311 GeoReport v2 on the wire: discovery at ``/open311/discovery.{xml,json}``, the endpoint at
``/open311/v2`` (docs/open311.md; the mapping's rules are in ``app/services/open311.py``).

Every resource is served as XML (UTF-8, with the XML declaration, no namespace) and as JSON in the Spark
convention (a container of repeated items is an array, even of one). Errors, ours and the framework's
(unknown path 404, wrong method 405), take the spec's shape, ``<errors><error><code/><description/>``
or ``[{"code", "description"}]``, with 400 for anything that is neither a missing resource (404) nor the
api_key (403). Arguments are read off the request by hand, not by FastAPI's validation, so that every
malformed one is the spec's 400 naming it.
"""

from __future__ import annotations

import gzip
import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.formparsers import MultiPartException

from app.http import abuse
from app.http.compression import LEVEL as GZIP_LEVEL, MINIMUM_BYTES as GZIP_MINIMUM_BYTES, accepts_gzip
from app.db import transaction
from app.http.deps import SettingsDep, client_principal, public_url
from app.http.problems import HTTP_TITLES
from app.config import Settings
from app.errors import Invalid, NotFound, PermissionDenied
from app.http.routing import GuardedRouter
from app.models import Scope, utcnow
from app.services import idempotency as idempotency_service
from app.services import intake
from app.services import forms as form_service
from app.services import open311 as open311_service
from app.services.open311 import BadRequest

async def read_limit(request: Request) -> None:
    """Every GET counts against its IP (``MINYI_OPEN311_READ_PER_IP_PER_MINUTE``): over it, the spec's error
    shape with 429 and ``Retry-After``. The POST is limited per API key instead (app/http/deps.py)."""
    if request.method == "GET":
        await request.app.state.rate_limiter.hit(f"ip:open311:{abuse.client_ip(request)}",
                                                 request.app.state.settings.open311_read_per_ip_per_minute)


router = GuardedRouter(include_in_schema=False, dependencies=[Depends(read_limit)])

PREFIX = "/open311/"
FORMATS = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
# In XML each list is a container of one repeated child; in Spark JSON the container is the array.
ITEM_TAGS = {
    "services": "service", "service_requests": "request", "attributes": "attribute", "values": "value",
    "endpoints": "endpoint", "formats": "format", "errors": "error",
}
# Characters XML 1.0 cannot carry at all: dropped from text rather than producing a document no parser reads.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ATTRIBUTE = re.compile(r"attribute\[([^\[\]]{1,64})\](\[\])?")
MAX_IDS = open311_service.MAX_REQUESTS


# --- formats ----------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _element(parent: ET.Element, tag: str, value: Any) -> None:
    element = ET.SubElement(parent, tag)
    _fill(element, tag, value)


def _fill(element: ET.Element, tag: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _element(element, key, item)
    elif isinstance(value, list):
        for item in value:
            _element(element, ITEM_TAGS[tag], item)
    else:
        element.text = _text(value)


def to_xml(root: str, value: Any) -> bytes:
    element = ET.Element(root)
    _fill(element, root, value)
    body = ET.tostring(element, encoding="utf-8", xml_declaration=False)
    # A raw CR would be read back as LF (XML normalises line ends); written as a reference it survives, so
    # text typed in a browser (CRLF) reads the same in XML as in JSON.
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.replace(b"\r", b"&#13;")


def render(fmt: str, root: str, value: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``value`` as the resource ``root``: a list (the container's items) or a dict (one object)."""
    return Response(body(fmt, root, value), status_code=status_code, media_type=FORMATS[fmt], headers=headers)


async def cached(request: Request, key: Hashable, build: Callable[[AsyncSession], Awaitable[bytes]]) -> bytes:
    """A public answer's bytes from this process's Open311 cache (``MINYI_OPEN311_CACHE_SECONDS``), built at
    most once at a time per key in a short read session of its own: a thousand readers of the same list
    cost one query and one rendering."""

    async def compute() -> bytes:
        async with transaction(request.app.state.sessionmaker) as session:
            return await build(session)

    return await request.app.state.open311_cache.get_or_compute(key, compute)  # type: ignore[no-any-return]


async def answer(request: Request, fmt: str, key: Hashable, content: bytes) -> Response:
    """A cached answer, compressed once per cache entry for the clients that take gzip (every browser and
    HTTP library): the compression middleware would compress the same ~700 KB default list anew for every
    request. It leaves an answer that already has a Content-Encoding as it is."""
    if len(content) >= GZIP_MINIMUM_BYTES and accepts_gzip(request.headers.get("accept-encoding", "")):
        packed = await request.app.state.open311_cache.derived(
            key, content, "gzip", _gzip, in_thread=len(content) >= GZIP_THREAD_BYTES)
        if packed is not None:
            return Response(packed, media_type=FORMATS[fmt], headers=GZIP_HEADERS)
    return Response(content, media_type=FORMATS[fmt], headers=READ_HEADERS)


def _gzip(content: bytes) -> bytes:
    return gzip.compress(content, compresslevel=GZIP_LEVEL, mtime=0)


async def streamed(
    request: Request, fmt: str, key: Hashable, produce: Callable[[], AsyncIterator[bytes]]
) -> Response:
    """A public answer from the same cache as ``cached``, sent as it is made when it is not there yet: rows
    are read, rendered and sent a batch at a time, and whoever asks for it meanwhile reads the same
    chunks. The first chunk comes after the query has run, so a failing query is still a whole error
    answer; a failure later cuts the answer short (the client sees an incomplete body, never a wrong one)."""
    cache = request.app.state.open311_cache
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        # Joining an answer being made, a client that takes gzip waits for it and gets its compressed copy,
        # made once: compressing the chunks for each reader on its own was ~7 ms of CPU a reader, all at once.
        await cache.settled(key)
    flow = await cache.get_or_stream(key, produce)
    if isinstance(flow, bytes):
        return await answer(request, fmt, key, flow)
    first = await anext(flow)

    async def chunks() -> AsyncIterator[bytes]:
        yield first
        async for chunk in flow:
            yield chunk

    return StreamingResponse(chunks(), media_type=FORMATS[fmt], headers=READ_HEADERS)


async def stream_body(fmt: str, root: str, items: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The list ``root`` of ``items`` in ``fmt``, as ``body`` would write it, in chunks of
    ``STREAM_BATCH`` items. Nothing is yielded before the first item (or the end) is in."""
    parts: list[bytes] = []
    if fmt == "json":
        async for item in items:
            parts.append((b"," if parts else b"[") + json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode())
            if len(parts) % open311_service.STREAM_BATCH == 0:
                yield b"".join(parts)
                parts = [b""]  # (not empty: the next item is not the first)
        yield b"".join(parts) + b"]" if parts else b"[]"
        return
    tag = ITEM_TAGS[root]
    parts.append(b'<?xml version="1.0" encoding="UTF-8"?>\n<' + root.encode() + b">")
    count = 0
    async for item in items:
        element = ET.Element(tag)
        _fill(element, tag, item)
        parts.append(ET.tostring(element, encoding="utf-8", xml_declaration=False).replace(b"\r", b"&#13;"))
        count += 1
        if count % open311_service.STREAM_BATCH == 0:
            yield b"".join(parts)
            parts = []
    parts.append(b"</" + root.encode() + b">")
    yield b"".join(parts)


def body(fmt: str, root: str, value: Any) -> bytes:
    """``value`` as the resource ``root`` in ``fmt``, as bytes."""
    if fmt == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return to_xml(root, value)


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise NotFound(f"不支持的格式 .{fmt[:20]}：请用 .xml 或 .json。 Format .{fmt[:20]} not served: use .xml or .json.",
                       code="format_not_found")
    return fmt


def _town(settings: Settings) -> open311_service.Town:
    return open311_service.Town(settings.open311_town_address, settings.open311_town_latitude,
                                settings.open311_town_longitude)


# Reads are public data: any web page may fetch them (a map of opinions on the town's site).
READ_HEADERS = {"Access-Control-Allow-Origin": "*"}
GZIP_HEADERS = {**READ_HEADERS, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
GZIP_THREAD_BYTES = 128 * 1024  # bigger answers are compressed off the event loop, as Starlette's GZip does


# --- errors -----------------------------------------------------------------------------------------


def error_response(request: Request, problem: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """Any problem (ours, validation, 404/405 from routing) in the spec's error shape and statuses."""
    status = int(problem.get("status", 400))
    if status == 401:
        status = 403  # the spec answers a missing or wrong api_key with 403
    elif 400 <= status < 500 and status not in (403, 404, 405, 413, 429):
        status = 400
    description = str(problem.get("detail") or problem.get("title") or "")
    details = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in problem.get("errors", ())]
    if details:
        description += " " + "; ".join(details)
    title = HTTP_TITLES[status][0] if status != problem.get("status") and status in HTTP_TITLES else problem.get("title", "")
    english = " ".join(re.findall(r"[A-Za-z][A-Za-z ]+", str(title))).strip()
    if english and not re.search(r"[A-Za-z]{3}", description):
        description += f" ({english}.)"  # messages written only in Chinese still say something to everyone
    kept = {k: v for k, v in (headers or {}).items() if k.lower() in ("allow", "retry-after")}
    if "allow" in {k.lower() for k in kept}:
        kept = {k: (", ".join(sorted(m.strip() for m in v.split(","))) if k.lower() == "allow" else v)
                for k, v in kept.items()}
    fmt = "json" if request.url.path.endswith(".json") else "xml"
    return render(fmt, "errors", [{"code": status, "description": description}], status_code=status, headers=kept)


# --- arguments --------------------------------------------------------------------------------------


def _single(pairs: list[tuple[str, str]], name: str) -> str | None:
    """An optional argument: sent empty is the same as not sent; sent twice is an error."""
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise BadRequest(f"参数 {name} 重复。 {name} was sent more than once.")
    return values[0].strip() or None if values else None


def _list(pairs: list[tuple[str, str]], name: str) -> list[str]:
    """A comma-delimited argument (which may also be repeated)."""
    return [item.strip() for k, v in pairs if k == name for item in v.split(",") if item.strip()]


def _jurisdiction(pairs: list[tuple[str, str]], settings: Settings) -> None:
    value = _single(pairs, "jurisdiction_id")
    if value is not None and value != settings.open311_jurisdiction_id:
        raise NotFound(f"本接口不服务辖区 {value[:100]}（仅 {settings.open311_jurisdiction_id}）。"
                       f" jurisdiction_id {value[:100]} not found (this endpoint serves {settings.open311_jurisdiction_id}).",
                       code="jurisdiction_not_found")


def _query(request: Request, settings: Settings) -> list[tuple[str, str]]:
    pairs = list(request.query_params.multi_items())
    _jurisdiction(pairs, settings)
    return pairs


# --- discovery and services -------------------------------------------------------------------------


@router.get("/open311/discovery.{fmt}")
async def discovery(request: Request, fmt: str, settings: SettingsDep) -> Response:
    fmt = _format(fmt)
    url = public_url(request, "/open311/v2")

    async def build(session: AsyncSession) -> bytes:
        changeset = open311_service.w3_time(await open311_service.changeset(session))
        return body(fmt, "discovery", {
            "changeset": changeset,
            "contact": settings.open311_contact,
            "key_service": settings.open311_key_service,
            "endpoints": [{
                "specification": open311_service.SPECIFICATION,
                "url": url,
                "changeset": changeset,
                "type": settings.open311_endpoint_type,
                "formats": ["text/xml", "application/json"],
            }],
        })

    key = ("discovery", fmt, url)
    return await answer(request, fmt, key, await cached(request, key, build))


@router.get("/open311/v2/services.{fmt}")
async def services(request: Request, fmt: str, settings: SettingsDep) -> Response:
    fmt = _format(fmt)
    _query(request, settings)

    async def build(session: AsyncSession) -> bytes:
        categories = await open311_service.list_services(session)
        return body(fmt, "services", [open311_service.service_view(c) for c in categories])

    key = ("services", fmt)
    return await answer(request, fmt, key, await cached(request, key, build))


@router.get("/open311/v2/services/{service_code}.{fmt}")
async def service_definition(request: Request, service_code: str, fmt: str, settings: SettingsDep) -> Response:
    fmt = _format(fmt)
    _query(request, settings)
    code = service_code[:64]

    async def build(session: AsyncSession) -> bytes:
        category = await open311_service.get_service(session, code)
        workrooms = await open311_service.list_workrooms(session)
        return body(fmt, "service_definition", open311_service.definition_view(category, workrooms))

    key = ("service", fmt, code)
    return await answer(request, fmt, key, await cached(request, key, build))


# --- service requests -------------------------------------------------------------------------------


@router.api_route("/open311/v2/requests.{fmt}", methods=["GET", "POST"])
async def requests(request: Request, fmt: str, settings: SettingsDep) -> Response:
    # One route for both methods, so that any other method's 405 names both in Allow.
    fmt = _format(fmt)
    if request.method == "POST":
        return await _file_request(request, fmt, settings)
    return await _list_requests(request, fmt, settings)


async def _list_requests(request: Request, fmt: str, settings: Settings) -> Response:
    pairs = _query(request, settings)
    ids = _list(pairs, "service_request_id")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"service_request_id 最多 {MAX_IDS} 个。 At most {MAX_IDS} service_request_id values.")
    if any(len(i) > 64 for i in ids):
        raise BadRequest("service_request_id 过长。 A service_request_id is too long.")
    statuses = _list(pairs, "status")
    if any(s not in ("open", "closed") for s in statuses):
        raise BadRequest("status 只能是 open 或 closed。 status must be open or closed.")
    codes = _list(pairs, "service_code")
    if any(len(c) > 64 for c in codes):
        raise BadRequest("service_code 过长。 A service_code is too long.")
    start, end = (_single(pairs, name) for name in ("start_date", "end_date"))
    # Normalised, so that the same question asked in another order or with repeats is one cache entry
    # (the answer's order is the newest first whatever the order of the ids).
    query = open311_service.RequestQuery(
        ids=tuple(sorted(set(ids))), service_codes=tuple(sorted(set(codes))), statuses=tuple(sorted(set(statuses))),
        start=open311_service.parse_w3_time("start_date", start) if start else None,
        end=open311_service.parse_w3_time("end_date", end) if end else None,
    )
    town = _town(settings)

    async def produce() -> AsyncIterator[bytes]:
        async with transaction(request.app.state.sessionmaker) as session:
            forms = open311_service.stream_requests(session, query, now=utcnow())
            async for chunk in stream_body(fmt, "service_requests",
                                           (open311_service.request_view(f, town) async for f in forms)):
                yield chunk

    return await streamed(request, fmt, ("requests", fmt, query), produce)


@router.get("/open311/v2/requests/{service_request_id}.{fmt}")
async def get_request(request: Request, service_request_id: str, fmt: str, settings: SettingsDep) -> Response:
    fmt = _format(fmt)
    _query(request, settings)
    tracking_no = service_request_id[:64]
    town = _town(settings)

    async def build(session: AsyncSession) -> bytes:
        form = await open311_service.get_request(session, tracking_no)
        return body(fmt, "service_requests", [open311_service.request_view(form, town)])

    key = ("request", fmt, tracking_no)
    return await answer(request, fmt, key, await cached(request, key, build))


@router.get("/open311/v2/tokens/{token}.{fmt}")
async def token(request: Request, token: str, fmt: str, settings: SettingsDep) -> Response:
    """Every Minyi service is realtime: a POST answers with the service_request_id itself, so no token
    is ever issued and every token is unknown (the spec's 404)."""
    fmt = _format(fmt)
    _query(request, settings)
    raise NotFound(f"令牌 {token[:64]} 不存在：本接口的服务均为实时（realtime），提交即返回 service_request_id。"
                   f" Token {token[:64]} not found: every service here is realtime, so no tokens are issued.",
                   code="token_not_found")


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        # Read here, not by Starlette's form parser: that one takes raw (unescaped) bytes as Latin-1, and the
        # spec says everything a client sends is UTF-8 — Chinese sent unescaped must not be stored garbled.
        try:
            return parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=200,
                             errors="strict")
        except UnicodeDecodeError as exc:
            raise BadRequest("表单不是有效的 UTF-8。 The form is not valid UTF-8.") from exc
        except ValueError as exc:  # more fields than max_num_fields
            raise BadRequest("表单字段过多。 Too many fields.") from exc
    if content_type != "multipart/form-data":
        raise BadRequest("请以 application/x-www-form-urlencoded 提交。 Send the request form-urlencoded.")
    try:
        async with request.form(max_files=0, max_fields=200) as form:
            pairs = list(form.multi_items())
    except MultiPartException as exc:
        raise BadRequest(f"表单无法解析：{exc.message} The form could not be parsed.") from exc
    if any(isinstance(v, UploadFile) for _k, v in pairs):
        raise BadRequest("不接受文件，照片请用 media_url。 Files are not accepted; use media_url.")
    return [(k, str(v)) for k, v in pairs]


def _attributes(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    found: dict[str, list[str]] = {}
    for key, value in pairs:
        if not key.startswith("attribute"):
            continue
        match = _ATTRIBUTE.fullmatch(key)
        if match is None:
            raise BadRequest(f"参数 {key[:80]} 格式不对，应为 attribute[代码]。 {key[:80]} is not attribute[CODE].")
        found.setdefault(match[1], []).append(value.strip())
    attributes = []
    for code, values in found.items():
        values = [v for v in values if v]  # sent empty is the same as not sent
        if len(values) > 1:
            raise BadRequest(f"属性 {code} 只能取一个值。 attribute[{code}] takes a single value.")
        if values:
            attributes.append((code, values[0]))
    return tuple(attributes)


async def _file_request(request: Request, fmt: str, settings: Settings) -> Response:
    pairs = await _form_pairs(request)
    query = list(request.query_params.multi_items())
    _jurisdiction(pairs, settings)
    _jurisdiction(query, settings)
    key = _single(pairs, "api_key") or _single(query, "api_key") or request.headers.get("x-api-key")
    if not key:
        raise PermissionDenied("缺少 api_key。 api_key is required to file a request.", code="api_key_required")
    principal = await client_principal(request, key)
    principal.require_scope(Scope.forms_write)
    service_code = _single(pairs, "service_code")
    if service_code is None:
        raise BadRequest("service_code 必填。 service_code is required.")
    # The service first: an unknown one is the spec's 404 whatever else the request lacks.
    await _known_service(request, service_code[:64])
    names = ("lat", "long", "address_string", "address_id", "description", "first_name", "last_name", "phone",
             "media_url")
    filed = open311_service.Filed(service_code=service_code, attributes=_attributes(pairs),
                                  **{name: _single(pairs, name) for name in names})
    # Read and kept nowhere (not needed to handle the opinion): email, device_id, account_id.
    for name in ("email", "device_id", "account_id"):
        _single(pairs, name)
    data = open311_service.submission(filed)
    # Before anything is written: a host the app may not print refuses the request (400), not the answer.
    track = public_url(request, "/track")
    try:
        # The front door (services/intake.py), as every other door. The Idempotency-Key is a Minyi extension
        # for clients on bad networks: a retried POST with the same key gets the first answer again instead
        # of filing the opinion twice (as POST /api/v1/forms does).
        outcome = await intake.submit_form(
            request.app.state, principal, data, door="open311",
            answer=lambda accepted, _photos: _filed(accepted, track), client_address=abuse.client_ip(request),
            idempotency_key=request.headers.get("idempotency-key"),
            previous_fingerprint=lambda _photos: idempotency_service.request_hash(["open311", sorted(pairs)]),
        )
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
        return render(fmt, "service_requests", outcome.body, status_code=outcome.status_code, headers=headers)
    except Invalid as exc:
        if exc.code == "unknown_category":
            raise NotFound(f"服务 {service_code[:64]} 不存在。 service_code {service_code[:64]} not found.",
                           code="service_not_found") from exc
        if exc.code and "idempotency" in exc.code:
            raise BadRequest(f"{exc.detail} Idempotency-Key reused with another request, or invalid.",
                             code=exc.code) from exc
        raise BadRequest(exc.detail, code=exc.code) from exc


async def _known_service(request: Request, service_code: str) -> None:
    """404 unless ``service_code`` is an active service, read through the short services cache: filing
    opens no request session of its own (the front door has its own transactions)."""

    async def codes() -> frozenset[str]:
        async with request.app.state.sessionmaker() as session:
            return frozenset(c.code for c in await open311_service.list_services(session))

    if service_code not in await request.app.state.open311_cache.get_or_compute(("open311-services",), codes):
        raise NotFound(f"服务 {service_code} 不存在。 service_code {service_code} not found.", code="service_not_found")


def _filed(accepted: form_service.Accepted, track: str) -> list[dict[str, Any]]:
    form = accepted.form
    notice = open311_service.service_notice(form.category.due_days if form.category else None) or ""
    # The realtime answer goes to the filing client only: it carries what the resident needs to follow the
    # opinion on Minyi's own tracking page, whether or not it is published.
    notice = (f"{notice} 回执编号 {form.tracking_no}，查询码 {accepted.code}，可在 {track} 查询办理进度。"
              f" Tracking number {form.tracking_no}, verification code {accepted.code}: {track}").strip()
    # No account_id: Minyi keeps no accounts for Open311 submitters (an absent field, not a null).
    return [{"service_request_id": form.tracking_no, "service_notice": notice}]
