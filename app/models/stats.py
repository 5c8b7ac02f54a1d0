"""Statistics counters, kept in the same transaction as every workflow action."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

# The counted metrics, in the order they are reported. Each is a column of ``StatCell`` and of
# ``StatOwnerCell``. ``answer_days`` is a sum (working days from submission to first answer), the rest
# are counts of forms; ``returned`` and ``reopened`` count times.
METRICS: tuple[str, ...] = (
    "collected", "assigned", "answered", "closed", "declined",
    "satisfied", "basically_satisfied", "unsatisfied", "on_time", "returned", "reopened", "answer_days",
    *("now_submitted", "now_assigned", "now_answered", "now_extension"),
    *("answered_le1", "answered_2_3", "answered_4_7", "answered_8_15", "answered_gt15"),
)

# Of those, the gauges: forms in a state now (1 while the form is in it, 0 after), so the summary's
# ``current`` is read from the same cells as the cumulative counts (issue 17.1).
GAUGES: tuple[str, ...] = ("now_submitted", "now_assigned", "now_answered", "now_extension")
# And the answered forms by working days to the first answer, for the days-to-answer chart (issue 17.5):
# ``stats.ANSWER_DAY_BUCKETS`` says which days each holds.
ANSWER_BUCKETS: tuple[str, ...] = ("answered_le1", "answered_2_3", "answered_4_7", "answered_8_15", "answered_gt15")
# Neither is a column of the reports (summary, by workroom, exports): they are read where they are shown.
UNREPORTED: frozenset[str] = frozenset(GAUGES + ANSWER_BUCKETS)


class _Counts:
    """The metric columns both counter tables share, one per name in ``METRICS``."""

    collected: Mapped[int] = mapped_column(Integer, default=0)
    assigned: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    declined: Mapped[int] = mapped_column(Integer, default=0)
    satisfied: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    basically_satisfied: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unsatisfied: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    on_time: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    returned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reopened: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answer_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    now_submitted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    now_assigned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    now_answered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    now_extension: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answered_le1: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answered_2_3: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answered_4_7: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answered_8_15: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answered_gt15: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StatCell(_Counts, Base):
    """Counts of forms submitted in one period, at one workroom, of one category.

    Each form counts in two cells: its day (grain ``d``) and its month (grain ``m``, ``period`` = the first
    of the month). Whole months are read from month cells and the ragged ends of a date range from day
    cells, so a read touches at most (months + 62 days) x workrooms x categories rows, whatever the number
    of forms. ``workroom_id``/``category_id`` 0 mean "none" (a form sent online without a workroom).
    """

    __tablename__ = "stat_cell"

    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    workroom_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    category_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    month: Mapped[date] = mapped_column(Date)


class StatOwnerCell(_Counts, Base):
    """The same counts per handling unit (``kind`` "unit": the unit now responsible for the form) and per
    representative (``kind`` "rep": the one who entered it), by day and month of submission."""

    __tablename__ = "stat_owner_cell"

    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(4), primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    month: Mapped[date] = mapped_column(Date)
