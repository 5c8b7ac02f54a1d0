"""Files the browser saves: one ``Content-Disposition`` for every response that yields a file (issue 17.3).

RFC 6266 with RFC 5987's ``filename*``: every browser in use (Chromium, Firefox, Safari, WeChat's
built-in browser, 360 and QQ browsers) takes the UTF-8 name, so the office saves ``意见征询表_….xlsx``,
not ``export (3).xlsx``; ``filename`` carries an ASCII name for the rest. Whatever the name is built
from (a workroom's name, an uploaded file's name), quotes, backslashes, path separators and control
characters never reach the header.

Links to these files in the pages carry ``download`` and ``hx-boost="false"`` (the macro
``download_link`` in frontend/templates/macros.html): htmx must never take such a link over and swap
the file's bytes into the page.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')
_SEPARATORS = re.compile(r"[/:*?<>|]")
_NOT_ASCII_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def clean_name(name: str) -> str:
    """``name`` without what a header or a file system must not get: control characters (a newline would
    end the header), quotes and backslashes (they would end or escape the quoted fallback), path separators
    and the characters Windows refuses in a file name. Never empty."""
    name = _SEPARATORS.sub("_", _UNSAFE.sub("", name)).strip(" .")
    return name or "download"


def ascii_fallback(name: str) -> str:
    """The name for clients that read only ``filename``: ``name`` itself when it is plain ASCII, otherwise
    ``minyi-`` and whatever ASCII the name has (``意见征询表_20261206-1430.xlsx`` →
    ``minyi-20261206-1430.xlsx``), keeping the extension."""
    name = clean_name(name)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = _NOT_ASCII_NAME.sub("", ext)
    if not _NOT_ASCII_NAME.search(stem) and stem:
        return f"{stem}.{ext}" if ext else stem
    ascii_stem = _NOT_ASCII_NAME.sub("_", stem).strip("_.-")
    stem = f"minyi-{ascii_stem}" if ascii_stem else "minyi"
    return f"{stem}.{ext}" if ext else stem


def content_disposition(
    filename: str, *, disposition: Literal["attachment", "inline"] = "attachment", fallback: str | None = None
) -> str:
    """``attachment; filename="<ASCII>"; filename*=UTF-8''<percent-encoded UTF-8>``."""
    name = clean_name(filename)
    plain = ascii_fallback(fallback if fallback is not None else name)
    return f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def attachment(filename: str, *, fallback: str | None = None) -> dict[str, str]:
    """The headers of a file to save under ``filename``."""
    return {"Content-Disposition": content_disposition(filename, fallback=fallback)}


def inline(filename: str, *, fallback: str | None = None) -> dict[str, str]:
    """The headers of a file to show in place (an image a page embeds), named ``filename`` when saved."""
    return {"Content-Disposition": content_disposition(filename, disposition="inline", fallback=fallback)}
