"""The README is the operator's reference: it must name every setting."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_readme_documents_every_setting():
    missing = [f"MINYI_{name.upper()}" for name in Settings.model_fields if f"MINYI_{name.upper()}" not in README]
    assert missing == []


def test_readme_opens_with_the_two_commands():
    opening = README.split("\n## ", 1)[0]
    assert "make run" in opening and "make test" in opening
