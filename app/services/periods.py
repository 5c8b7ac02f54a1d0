"""Reporting periods: a month ``2026-11``, a quarter ``2026-Q4`` or a year ``2026`` (issue 20).

One reading for every caller: the brief (``/api/v1/reports/{period}``), the representatives' records and
their pages. A period is a range of local days, first and last inclusive, the same ``from``/``to`` the
statistics API takes, so a document's numbers are the statistics API's numbers for that period. A period
outside the dates the app accepts (app/schemas/dates.py: 1900-2100) or written otherwise is 422
``invalid_period``, never a 500.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date

from app.errors import Invalid
from app.schemas.dates import EARLIEST, LATEST

_PATTERN = re.compile(r"([0-9]{4})(?:-(0[1-9]|1[0-2])|-[Qq]([1-4]))?")
KINDS = ("month", "quarter", "year")


@dataclass(frozen=True)
class Period:
    key: str  # as written canonically: 2026-11, 2026-Q4, 2026
    kind: str  # month | quarter | year
    first: date
    last: date

    @property
    def label(self) -> str:
        """As Chinese documents write it: 2026年11月, 2026年第四季度, 2026年."""
        if self.kind == "month":
            return f"{self.first.year}年{self.first.month}月"
        if self.kind == "quarter":
            return f"{self.first.year}年第{'一二三四'[(self.first.month - 1) // 3]}季度"
        return f"{self.first.year}年"

    @property
    def word(self) -> str:
        """本月 / 本季度 / 本年度: how a sentence of the brief refers to its own period."""
        return {"month": "本月", "quarter": "本季度", "year": "本年度"}[self.kind]

    def previous(self) -> Period:
        """The period of the same kind just before (for "比上月增加…"); a period starting at the earliest
        accepted day has none and answers itself."""
        if self.first <= EARLIEST:
            return self
        if self.kind == "year":
            return parse(f"{self.first.year - 1:04d}")
        if self.kind == "quarter":
            quarter = (self.first.month - 1) // 3 + 1
            year, quarter = (self.first.year, quarter - 1) if quarter > 1 else (self.first.year - 1, 4)
            return parse(f"{year:04d}-Q{quarter}")
        year, month = (self.first.year, self.first.month - 1) if self.first.month > 1 else (self.first.year - 1, 12)
        return parse(f"{year:04d}-{month:02d}")

    def months(self) -> list[Period]:
        """The months the period covers, in order."""
        if self.kind == "month":
            return [self]
        return [parse(f"{self.first.year:04d}-{m:02d}") for m in range(self.first.month, self.last.month + 1)]


def parse(text: str | None) -> Period:
    """``2026-11`` / ``2026-Q4`` / ``2026`` → a Period, or 422 ``invalid_period`` saying what is accepted."""
    value = (text or "").strip()
    match = _PATTERN.fullmatch(value) if len(value) <= 7 else None
    if match is None:
        raise Invalid(
            f"报告期“{value[:20]}”无效：应为月份（如 2026-11）、季度（如 2026-Q4）或年份（如 2026）。",
            code="invalid_period",
        )
    year = int(match.group(1))
    if match.group(2):
        month = int(match.group(2))
        first, last, kind, key = date(year, month, 1), date(year, month, monthrange(year, month)[1]), "month", value
    elif match.group(3):
        quarter = int(match.group(3))
        first_month = quarter * 3 - 2
        first = date(year, first_month, 1)
        last = date(year, first_month + 2, monthrange(year, first_month + 2)[1])
        kind, key = "quarter", f"{year:04d}-Q{quarter}"
    else:
        first, last, kind, key = date(year, 1, 1), date(year, 12, 31), "year", value
    if first < EARLIEST or last > LATEST:
        raise Invalid(
            f"报告期“{key}”超出可统计的日期范围（{EARLIEST.year}–{LATEST.year} 年）。", code="invalid_period"
        )
    return Period(key=key, kind=kind, first=first, last=last)
