"""One field list (issue 16.1): a submitted field is declared once, in ``FormCreate``, and what reads or writes
forms derives from it. These checks fail when a new list of field names creeps back in, or a derivation
drops a field; docs/fields.md shows the whole change for a new field (five application files).

A field is added for real (a subclass of the schema with a ``village`` field, marked for the pages, the
integrators and the filters) to check the derivations do not depend on today's fields."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import Field, create_model

from app.models import OpinionForm
from app.schemas import forms as schemas
from app.schemas.forms import COLUMN_FILTERS, INTEGRATOR_FIELDS, PAGE_FIELDS, FormCreate, FormQuery, FormRead
from app.services import forms as form_service
from app.services import views
from app.web import public, rep

COLUMNS = set(OpinionForm.__table__.columns.keys())


def test_the_front_doors_submission_is_the_schemas_fields_and_what_doors_add() -> None:
    names = [f.name for f in dataclasses.fields(form_service.Submission)]
    assert names[: len(FormCreate.model_fields)] == list(FormCreate.model_fields)
    assert names[len(FormCreate.model_fields):] == ["address_id", "media_url", "review_flag", "content_check"]
    # Required stays required, defaults stay the schema's.
    with pytest.raises(TypeError):
        form_service.Submission()  # type: ignore[call-arg]
    assert form_service.Submission(content="x").public is False


def test_every_submitted_field_with_a_column_is_written_and_read_back() -> None:
    worked_out = {"channel", "service_point_id", "sms_consent"}  # submit_many decides these itself
    stored = {name for name in FormCreate.model_fields if name in COLUMNS} - worked_out
    assert stored <= set(form_service._AS_SUBMITTED)
    read = {name for name in FormRead.model_fields if name in COLUMNS}
    assert read <= set(views._AS_STORED)


def test_the_pages_post_the_fields_they_render_from_the_schema() -> None:
    assert set(PAGE_FIELDS) <= set(public.FIELDS) and set(PAGE_FIELDS) <= set(rep.TEXT_FIELDS)


def test_filters_marked_for_a_column_name_one() -> None:
    assert set(COLUMN_FILTERS.values()) <= COLUMNS
    assert set(INTEGRATOR_FIELDS) <= set(FormCreate.model_fields)


def test_a_new_field_is_found_by_every_derivation() -> None:
    """The marks are read from the model, not from a list: a schema with one more field yields it."""
    village = (str | None, Field(None, max_length=64, title="村（社区）",
                                 json_schema_extra={schemas.PAGE: {"rep_label": "群众所在村"}, schemas.INTEGRATORS: True}))
    with_village = create_model("WithVillage", __base__=FormCreate, village=village)
    page = {name: mark for name, mark in schemas.marked(with_village, schemas.PAGE).items()}
    assert page == {"village": {"rep_label": "群众所在村"}}
    assert list(schemas.marked(with_village, schemas.INTEGRATORS)) == ["village"]
    assert schemas.max_length(with_village, "village") == 64
    query = create_model("QueryWithVillage", __base__=FormQuery,
                         village=(str | None, Field(None, max_length=64, json_schema_extra={schemas.COLUMN: "village"})))
    assert schemas.marked(query, schemas.COLUMN) == {"village": "village"}
    # Blank text from a page is no value, for a marked field as for the others (the validator reads the marks).
    assert with_village(content="路灯坏了。", submitter_name="  ").submitter_name is None
