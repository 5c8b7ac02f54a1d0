"""Looking at the documents the app writes: PDF pages turned into PNGs under tests/artifacts/ (Debian's
poppler-utils: ``pdftoppm``, ``pdftotext``, ``pdffonts``), text read back out of PDF and Word files.

Every test that writes a document keeps its pages as PNGs, so a person can look at what the tests saw
(tests/artifacts/ is git-ignored; docs/images/ keeps the one the README shows). Without poppler-utils the
test is skipped, saying so, except in CI (``.ci/run`` installs them), where it fails.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
REQUIRE = os.environ.get("MINYI_TEST_REQUIRE_BROWSER") == "1" or bool(os.environ.get("CI"))


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} (Debian's poppler-utils) is not installed: apt-get install -y poppler-utils"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(args: list[str], data: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.pdf"
        source.write_bytes(data)
        # pdftotext writes to a file unless told "-"; pdfinfo and pdffonts always print, and refuse a "-".
        out = ["-"] if Path(args[0]).name == "pdftotext" else []
        return subprocess.run([*args, str(source), *out], capture_output=True, check=True, timeout=60).stdout


def pdf_text(data: bytes) -> str:
    """The PDF's text, page after page (form feeds between pages), as pdftotext reads it: what a reader's
    search or copy would find, so Chinese must come out as Chinese, not as glyph numbers."""
    return _run([_need("pdftotext"), "-layout", "-enc", "UTF-8"], data).decode()


def pdf_pages(data: bytes) -> int:
    info = _run([_need("pdfinfo")], data).decode()
    match = re.search(r"^Pages:\s+(\d+)", info, re.M)
    assert match, info
    return int(match.group(1))


def pdf_page_size_mm(data: bytes) -> tuple[float, float]:
    """The first page's width and height in millimetres (A4: 210 × 297, A5: 148 × 210)."""
    info = _run([_need("pdfinfo")], data).decode()
    match = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.M)
    assert match, info
    return round(float(match.group(1)) * 25.4 / 72, 1), round(float(match.group(2)) * 25.4 / 72, 1)


def pdf_fonts(data: bytes) -> list[dict[str, str]]:
    """The fonts the PDF uses (pdffonts): each with ``name``, ``type`` and ``emb`` ("yes" when embedded)."""
    lines = _run([_need("pdffonts")], data).decode().splitlines()[2:]
    fonts = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 7:
            # name, type (may be two words), encoding, emb, sub, uni, object ID (two numbers)
            fonts.append({"name": parts[0], "type": " ".join(parts[1:-6]), "emb": parts[-5], "uni": parts[-3]})
    return fonts


def pdf_to_pngs(data: bytes, name: str, *, dpi: int = 60, first: int = 1, last: int | None = None) -> list[Path]:
    """Pages ``first``..``last`` as PNGs ``tests/artifacts/{name}-{page}.png``; returns their paths, each checked
    to be a real, non-blank image. The pages are rendered apart and moved in whole (``os.replace``): a test
    run on both engines at once on two workers writes the same names, and neither may see the other's
    half-written or removed files."""
    from PIL import Image

    tool = _need("pdftoppm")
    ARTIFACTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ARTIFACTS) as tmp:
        source = Path(tmp) / "in.pdf"
        source.write_bytes(data)
        args = [tool, "-png", "-r", str(dpi), "-f", str(first)]
        if last is not None:
            args += ["-l", str(last)]
        subprocess.run([*args, str(source), str(Path(tmp) / name)], check=True, timeout=120)
        written = sorted(Path(tmp).glob(f"{name}-*.png"))
        assert written, f"pdftoppm wrote no page for {name}"
        for page in written:
            with Image.open(page) as image:
                extrema = image.convert("L").getextrema()
                assert extrema[0] < 128 < extrema[1] or extrema[0] < 200, f"{page.name} is blank"
        paths = []
        for page in written:
            os.replace(page, ARTIFACTS / page.name)
            paths.append(ARTIFACTS / page.name)
    kept = {path.name for path in paths}
    for old in ARTIFACTS.glob(f"{name}-*.png"):  # pages of an earlier, longer document of this name
        if old.name not in kept and re.fullmatch(re.escape(name) + r"-\d+\.png", old.name):
            old.unlink(missing_ok=True)
    return paths


def docx_text(data: bytes) -> str:
    """Every paragraph and table cell of a Word file, in document order, one per line."""
    from docx import Document

    document = Document(io.BytesIO(data))
    lines: list[str] = []
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append("".join(node.text or "" for node in child.iter() if node.tag.endswith("}t")))
        elif tag == "tbl":
            for row in child.iter():
                if row.tag.endswith("}tr"):
                    cells = []
                    for cell in row.iterchildren():
                        if cell.tag.endswith("}tc"):
                            cells.append("".join(n.text or "" for n in cell.iter() if n.tag.endswith("}t")))
                    lines.append("\t".join(cells))
    return "\n".join(lines)


def docx_images(data: bytes) -> int:
    """How many pictures the Word file holds."""
    from docx import Document

    document = Document(io.BytesIO(data))
    return sum(1 for rel in document.part.rels.values() if "image" in rel.reltype)
