"""PLACEHOLDER router (issue 6): filled in by its helper."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["integrations"])
