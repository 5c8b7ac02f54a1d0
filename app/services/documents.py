"""What every printed document shares: a font with Chinese glyphs, and a PDF that embeds it.

The paper forms, the representatives' records and the briefs are PDFs with Chinese text, written with
fpdf2 (pure Python; fonts embedded as subsets, so a PDF reads the same on any machine). fpdf2 and the
font are loaded on first use: a worker that never prints never pays for them.

The font is the first of: ``MINYI_CJK_FONT``; what fontconfig names for ``sans-serif:lang=zh-cn``; the
usual paths of Debian's ``fonts-noto-cjk`` and ``fonts-wqy-zenhei``. Without one, a document is refused
with 503 ``cjk_font_missing`` (saying which package to install), never written with empty boxes.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import Unavailable

if TYPE_CHECKING:
    from fpdf import FPDF

# (path, face index in a collection, bold path or None). Noto Sans CJK's collection holds the JP, KR, SC,
# TC and HK faces; index 2 is Simplified Chinese.
_KNOWN: tuple[tuple[str, int, str | None], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2, "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2, None),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0, None),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0, None),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0, None),
)

FAMILY = "cjk"  # the family name documents set with ``pdf.set_font(FAMILY, ...)`` ("B" for bold)


@dataclass(frozen=True)
class CjkFont:
    path: Path
    index: int = 0  # the face in a .ttc collection
    bold_path: Path | None = None
    bold_index: int = 0


def _noto_index(path: Path) -> int:
    return 2 if path.name.startswith(("NotoSansCJK", "NotoSerifCJK")) and path.suffix == ".ttc" else 0


def _from_fontconfig() -> CjkFont | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}\n%{index}", "sans-serif:lang=zh-cn"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) < 2 or not out[0]:
        return None
    path = Path(out[0])
    # fontconfig answers some font for any pattern: only one that covers Chinese is kept.
    if not path.is_file() or not _covers_chinese(path, int(out[1] or 0)):
        return None
    bold = path.with_name(path.name.replace("Regular", "Bold"))
    return CjkFont(path, int(out[1] or 0), bold if bold != path and bold.is_file() else None, int(out[1] or 0))


def _covers_chinese(path: Path, index: int) -> bool:
    from fontTools.ttLib import TTFont  # fpdf2's own dependency

    try:
        font = TTFont(str(path), fontNumber=index, lazy=True)
        cmap = font.getBestCmap() or {}
    except Exception:  # noqa: BLE001 - any unreadable font is simply not the one
        return False
    return all(ord(ch) in cmap for ch in "民意征询表")


@lru_cache(maxsize=4)
def find_cjk_font(configured: Path | None) -> CjkFont | None:
    if configured is not None:
        if not configured.is_file():
            return None
        return CjkFont(configured, _noto_index(configured))
    found = _from_fontconfig()
    if found is not None:
        return found
    for path, index, bold in _KNOWN:
        if Path(path).is_file():
            bold_path = Path(bold) if bold and Path(bold).is_file() else None
            return CjkFont(Path(path), index, bold_path, index)
    return None


def cjk_font(configured: Path | None = None) -> CjkFont:
    """The font for Chinese text, or 503 ``cjk_font_missing`` saying how to get one."""
    font = find_cjk_font(configured)
    if font is None:
        where = f"MINYI_CJK_FONT={configured} 不是可读的字体文件；" if configured else ""
        raise Unavailable(
            f"{where}服务器未安装中文字体，无法生成 PDF 文档。请安装 fonts-noto-cjk（apt-get install fonts-noto-cjk）"
            "或设置 MINYI_CJK_FONT。",
            code="cjk_font_missing",
        )
    return font


def new_pdf(*, page_format: str = "A4", orientation: str = "portrait", configured_font: Path | None = None,
            title: str = "", **kwargs: Any) -> FPDF:
    """An fpdf2 document with the Chinese font registered as ``FAMILY`` (regular and "B"), margins of 15 mm,
    no automatic page header; ``title`` goes into the PDF's metadata."""
    font = cjk_font(configured_font)
    import warnings

    from fpdf import FPDF

    with warnings.catch_warnings():
        # fpdf2 2.8.5 corrected the A5 size and says so on every A5 document.
        warnings.filterwarnings("ignore", message="Dimensions for page format", category=UserWarning)
        pdf = FPDF(orientation=orientation, unit="mm", format=page_format, **kwargs)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font(FAMILY, "", str(font.path), collection_font_number=font.index)
    if font.bold_path is not None:
        pdf.add_font(FAMILY, "B", str(font.bold_path), collection_font_number=font.bold_index)
    else:  # no bold face: bold text is set in the regular one rather than refused
        pdf.add_font(FAMILY, "B", str(font.path), collection_font_number=font.index)
    pdf.set_font(FAMILY, size=11)
    pdf.set_creator("Minyi 民意")
    if title:
        pdf.set_title(title)
    return pdf


def pdf_bytes(pdf: FPDF) -> bytes:
    return bytes(pdf.output())
