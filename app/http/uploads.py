"""Reading an uploaded photo out of a request: one reading for every photo upload of the API (a form's,
an activity's)."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from app.errors import Invalid, UnsupportedMediaType
from app.services import photos as photo_service


async def uploaded_photo(request: Request) -> photo_service.Upload:
    """The one photo of a multipart body: the file under ``file`` or, when there is none, the only file
    under another name. Other fields are ignored."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType("请以 multipart/form-data 上传照片（文件字段名 file）。", code="unsupported_media_type")
    try:
        async with request.form(max_files=photo_service.MAX_PHOTOS, max_fields=50) as form:
            files = [(name, value) for name, value in form.multi_items() if isinstance(value, UploadFile)]
            chosen = next((value for name, value in files if name == "file"), None)
            if chosen is None and len(files) == 1:
                chosen = files[0][1]
            if chosen is None:
                raise Invalid("请在文件字段 file 中附上一张照片。", code="photo_required")
            return await photo_service.read_upload(chosen, request.app.state.settings)
    except MultiPartException as exc:
        raise Invalid(f"表单数据无法解析：{exc.message}", code="invalid_multipart") from exc
