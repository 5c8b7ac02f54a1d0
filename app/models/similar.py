"""Similar opinions and the topics they group into (issue 19; app/services/similar_forms.py).

``FormTerm`` indexes each form by its similarity terms (``services/similarity.terms``), so the forms that
may report the same issue as another are found by a few index range scans, newest first. Each indexed
form is a member of exactly one ``Topic``: the topic of the most similar earlier form when that one is the
same issue, else a topic of its own. A topic with members is a group of similar forms; its members in a
week or a month are that period's hot topic.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

TERM_LENGTH = 24


class FormTerm(Base):
    __tablename__ = "form_term"

    term: Mapped[str] = mapped_column(String(TERM_LENGTH), primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"), primary_key=True)
    # (The primary key, term then form id, serves "the newest forms with this term".)


class Topic(Base):
    __tablename__ = "topic"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size: Mapped[int] = mapped_column(Integer, default=1)
    # Words naming the group (similarity.keywords), joined by "、"; refreshed as the topic grows (at 2, 4,
    # 8, ... members), not on every form.
    keywords: Mapped[str] = mapped_column(String(200), default="")


class TopicMember(Base):
    __tablename__ = "topic_member"
    __table_args__ = (Index("ix_topic_member_submitted_at_topic_id", "submitted_at", "topic_id"),)

    form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"), primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topic.id", ondelete="CASCADE"), index=True)
    # The form's, copied: a period's topics are counted from this table alone.
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    workroom_id: Mapped[int | None] = mapped_column(Integer)
