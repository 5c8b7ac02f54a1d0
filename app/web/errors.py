"""Errors on the HTML pages: the same AppError family the API renders as problem+json, shown to a person.

A full page load gets an error page with the message and a way back; an htmx request gets the message
as a toast (the page stays as it was, nothing typed is lost); a page that needs a signed-in user
redirects to /login and comes back afterwards.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from app.web.render import is_htmx, render


def page_problem(request: Request, problem: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if problem.get("code") == "login_required" and "Location" in headers:
        if is_htmx(request):  # a swap of the login page into a fragment would be wrong: reload to it instead
            return Response(status_code=204, headers={"HX-Redirect": headers["Location"]})
        return RedirectResponse(headers["Location"], status_code=303)
    status = int(problem.get("status", 500))
    headers.pop("WWW-Authenticate", None)
    if is_htmx(request):
        headers.update({"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"})
        return render(request, "error.html", {"problem": problem}, block="toast", status_code=status, headers=headers)
    return render(request, "error.html", {"problem": problem}, status_code=status, headers=headers)
