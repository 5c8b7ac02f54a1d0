"""The Chinese working-day calendar counted independently of the app's index, for tests to check it against:
chinese-calendar's data where it has the year, else weekdays less the statutory holidays."""

from __future__ import annotations

from datetime import date

import chinese_calendar

from app.services import working_days


def is_working(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package does not know: weekdays less the statutory days
        return day.weekday() < 5 and day not in dict(working_days.statutory_holidays(day.year))
