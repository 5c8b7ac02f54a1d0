"""Checking error answers: every API error is RFC 9457 ``application/problem+json`` (app/http/problems.py).

``assert_problem(response, status, code)`` asserts what each test module's own copy used to assert, all of
it: the status, the content type, the five fields (``type``, ``title``, ``status``, ``detail``, ``code``)
with the body's ``status`` the answer's and ``type``, ``title`` and ``detail`` not empty, and ``code``
when given. It returns the body, for the test's further checks.
"""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"
PROBLEM_FIELDS = frozenset({"type", "title", "status", "detail", "code"})


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is a problem+json answer with ``status`` (and ``code``, unless None): its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert PROBLEM_FIELDS <= body.keys(), body
    assert body["status"] == status, body
    assert body["type"] and body["title"] and body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body
