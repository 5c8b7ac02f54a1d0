"""Which ``Host`` the app answers to, and which it prints in absolute URLs (issue 15, point 7).

A QR code, a poster, a calendar subscription and Open311's links carry an absolute URL. Taken from the
request's ``Host`` header, anyone could have the app print (and a cache keep) a URL of their choosing, so:

- ``MINYI_PUBLIC_URL`` set: every absolute URL starts with it, whatever the request says.
- Otherwise the request's host is used only when it is one the app may print: those of
  ``MINYI_ALLOWED_HOSTS``, or, when that is unset, outside production, ``DEVELOPMENT_HOSTS`` (what
  ``make run``, the demo and the tests use). Any other host: 400 ``host_not_allowed``, nothing printed.
  In production with neither setting, no host is printable: set one of them.
- ``MINYI_ALLOWED_HOSTS`` set: every route refuses a request naming another host (400
  ``host_not_allowed``, the same check as Starlette's TrustedHostMiddleware, rendered like every other
  error), except the operations probes (``PROBES``), which load balancers and Prometheus reach at the
  machine's own address and which print no URL.
- An answer that carries a URL taken from the request's host says ``Cache-Control: private`` and
  ``Vary: Host``: no shared cache hands it to a request for another host (``url_cache_headers``).

Patterns: a host name or IP address (IPv6 with or without brackets), ``*.example.cn`` for its
subdomains (not ``example.cn`` itself), or ``*`` for any host. Ports are ignored.
"""

from __future__ import annotations

from fastapi import Request

from app.config import Settings
from app.errors import AppError

DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1", "::1", "testserver")
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
REFUSED = "请求的主机名（Host）不在本服务允许的范围内。管理员可设置 MINYI_PUBLIC_URL 或 MINYI_ALLOWED_HOSTS。"


def host_of(request: Request) -> str:
    """The request's host name: lower case, without port, brackets or a final dot ("" when none)."""
    raw = request.headers.get("host") or (request.url.hostname or "")
    raw = raw.strip().lower()
    if raw.startswith("["):  # [::1]:8000
        host = raw[1:].split("]", 1)[0]
    elif raw.count(":") == 1:  # example.cn:8000 (a bare IPv6 address has more colons)
        host = raw.split(":", 1)[0]
    else:
        host = raw
    return host.rstrip(".")


def matches(host: str, patterns: list[str] | tuple[str, ...]) -> bool:
    for pattern in patterns:
        pattern = pattern.rstrip(".")
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
            return True
    return False


def printable_hosts(settings: Settings) -> list[str] | tuple[str, ...]:
    """The hosts an absolute URL may be built from when MINYI_PUBLIC_URL is unset."""
    if settings.allowed_host_list:
        return settings.allowed_host_list
    return DEVELOPMENT_HOSTS if settings.environment != "production" else ()


def refused() -> AppError:
    return AppError(REFUSED, code="host_not_allowed")


async def check_host(request: Request) -> None:
    """Every route's first dependency (app/main.py): with MINYI_ALLOWED_HOSTS set, another host is 400."""
    allowed = request.app.state.settings.allowed_host_list
    if allowed and request.url.path not in PROBES and not matches(host_of(request), allowed):
        raise refused()


def base_url(request: Request) -> str:
    """Where absolute URLs start: MINYI_PUBLIC_URL, else this request's base if its host is printable,
    else 400 ``host_not_allowed``."""
    settings = request.app.state.settings
    if settings.public_url:
        return str(settings.public_url).rstrip("/")
    if not matches(host_of(request), printable_hosts(settings)):
        raise refused()
    return str(request.base_url).rstrip("/")


def url_cache_headers(request: Request, *, seconds: int) -> dict[str, str]:
    """Cache headers of an answer that carries ``base_url``: public when it is MINYI_PUBLIC_URL (the same
    for every request); else private to the browser that asked, and varying with the host."""
    if request.app.state.settings.public_url:
        return {"Cache-Control": f"public, max-age={seconds}"}
    return {"Cache-Control": f"private, max-age={seconds}", "Vary": "Host"}
