"""The JSON API, version 1: stable, for integrators and the dashboard (see CONTRACT.md)."""

from app.api.v1 import (
    activities,
    api_clients,
    audit,
    auth,
    calendars,
    changes,
    exports,
    forms,
    imports,
    lockouts,
    paper,
    personal_data,
    photos,
    records,
    reference,
    reports,
    rosters,
    service_points,
    similar,
    stats,
    webhooks,
    wechat,
    working_calendar,
)
from app.http.routing import GuardedRouter
from app.schemas.common import problem

# What any operation may answer besides its own statuses, all as problem+json (operations add their own,
# and replace one of these with a more precise description, through ``problem``).
COMMON_PROBLEMS = {
    400: problem("NUL in the path or query (`invalid_characters`)"),
    401: problem("No, unknown or expired credentials where they are needed (`unauthorized`)"),
    403: problem("Signed in, but not allowed (`forbidden`), or an API key without the scope"),
    404: problem("Unknown resource, or one the caller may not see (`not_found`)"),
    413: problem("Body over MINYI_MAX_BODY_BYTES (`payload_too_large`)"),
    422: problem("Invalid input (`validation_error` with `errors`, or a rule's own code)"),
    429: problem("Over a rate limit, or locked out (`rate_limited`...; see Retry-After)"),
    503: problem("The database is unreachable for now (`database_unavailable`; see Retry-After)"),
}

router = GuardedRouter(prefix="/api/v1", responses=COMMON_PROBLEMS)
# exports first: /forms/export.csv before /forms/{id}
for module in (auth, reference, exports, forms, similar, photos, stats, rosters, service_points, calendars, imports,
               wechat, api_clients, webhooks, changes, lockouts, audit, personal_data, working_calendar, records):
    router.include_router(module.router)
router.include_router(activities.router)  # the register of activities (issue 20.2)
router.include_router(paper.router)  # paper forms: printed batches, entry, reconciliation (issue 20.1)
router.include_router(reports.router)  # the brief (工作简报, issue 20.4)
