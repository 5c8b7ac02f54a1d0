"""The Chinese font every PDF needs (app/services/documents.py): found on this machine, and refused with a
clear 503 problem, never a PDF of empty boxes or a 500, when the configured one is not there."""

from __future__ import annotations

import pytest

from app.errors import Unavailable
from app.services import documents
from tests.conftest import make_settings
from tests.factories import build_world
from tests.support.problems import assert_problem


def test_the_font_is_found_and_a_missing_configured_one_says_what_to_install(tmp_path) -> None:
    found = documents.find_cjk_font(None)
    if found is None:
        pytest.skip("no Chinese font on this machine (apt-get install fonts-noto-cjk; CI installs it)")
    assert found.path.is_file()
    assert documents.find_cjk_font(found.path) is not None  # configured explicitly: the same file is taken
    with pytest.raises(Unavailable) as refused:
        documents.cjk_font(tmp_path / "no-such-font.ttc")
    assert refused.value.code == "cjk_font_missing"
    assert "fonts-noto-cjk" in refused.value.detail and "MINYI_CJK_FONT" in refused.value.detail


@pytest.fixture
def settings(db_url, tmp_path):
    return make_settings(db_url, cjk_font=tmp_path / "missing.ttc", export_dir=tmp_path / "exports")


async def test_documents_without_a_font_are_a_503_problem_and_the_json_brief_still_answers(client, sessionmaker):
    world = await build_world(sessionmaker)
    coordinator = world.auth("coordinator")
    assert_problem(await client.get("/api/v1/reports/2026-03", params={"format": "pdf"}, headers=coordinator),
                   503, "cjk_font_missing")
    assert (await client.get("/api/v1/reports/2026-03", params={"format": "json"}, headers=coordinator)).status_code == 200
    rep = world.representatives["rep"].id
    assert_problem(await client.get(f"/api/v1/representatives/{rep}/record",
                                    params={"period": "2026-03", "format": "pdf"}, headers=coordinator),
                   503, "cjk_font_missing")
