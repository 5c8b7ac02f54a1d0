"""What each caller may read of a form, and of the people in it: one policy, used by the JSON API, the
pages, exports, webhooks and notices alike.

- **Names and phone numbers** of submitters (and representatives' phones) are whole for the office
  (admin, coordinator) only. Everyone else who may see the form (handlers, representatives, API clients)
  reads them masked: ``王**``, ``138****5678`` — enough to tell forms apart, not to identify the person.
  A handler or representative who must call the resident back asks for them explicitly
  (``reveal_contact``): allowed on a form they may see, and recorded in the audit log (who, when, which form).
- **The office's own business** — internal notes, assignment instructions, the steps residents do not see
  (returns, extension requests, urging, supervision, content review) and the staff who took each step — is
  for staff accounts. API clients, whatever their scopes, read the case as the public timeline shows it:
  the public steps, the reply and the reason for declining.
- **Webhooks and the changes feed** carry ``changes.integrator_view``: no name, phone, internal note or
  verification code at all; a delivery log shows its body only to a caller who may read forms.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.services.auth import Principal


@dataclass(frozen=True)
class Disclosure:
    personal: bool  # names and phone numbers whole
    internal: bool  # internal notes, instructions, the office's steps and who took them


OFFICE = Disclosure(personal=True, internal=True)
STAFF = Disclosure(personal=False, internal=True)
OUTSIDE = Disclosure(personal=False, internal=False)


def of(principal: Principal) -> Disclosure:
    if principal.user is None:  # an API client, a resident, the public
        return OUTSIDE
    return OFFICE if principal.is_office else STAFF


def sees_personal_data(principal: Principal) -> bool:
    return of(principal).personal


def mask_name(name: str | None) -> str | None:
    """``张三丰`` → ``张**``."""
    if not name:
        return name
    name = name.strip()
    return name[:1] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``; shorter numbers keep their first and last quarter."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    keep = max(1, len(digits) // 4)
    return digits[:keep] + "*" * (len(digits) - 2 * keep) + digits[-keep:]


def name(value: str | None, view: Disclosure) -> str | None:
    return value if view.personal else mask_name(value)


def phone(value: str | None, view: Disclosure) -> str | None:
    return value if view.personal else mask_phone(value)
