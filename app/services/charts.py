"""Charts as PNG pictures for the printed documents (the brief's bars and lines, issue 20.4).

matplotlib with its Agg backend, imported on first use (~1 s and ~30 MB that a process that never prints
never pays). Figures are made with ``matplotlib.figure.Figure`` directly, never through ``pyplot``'s global
state, so two documents can be drawn in two threads at once. Labels are set in the document font
(``documents.cjk_font``): a .ttc collection's face is picked by its index, so Noto Sans CJK draws the
Simplified Chinese shapes, not the Japanese ones. Small figures at 150 dpi: a chart costs ~0.1 s.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from app.services.documents import CjkFont

if TYPE_CHECKING:
    from matplotlib.font_manager import FontProperties

DPI = 150
WIDTH_IN = 6.4  # fills the text width of an A4 page at 15 cm
COLOURS = ("#b22222", "#4a78b5", "#6b8e23", "#8a6d3b")  # party red first, then calm blues and greens
Series = Sequence[tuple[str, Sequence[float]]]


@lru_cache(maxsize=4)
def _family(font: CjkFont) -> str:
    """The family name matplotlib knows the font's face by (the collection's face ``font.index``); the
    font is added to matplotlib's list first when it is not a system font it found by itself."""
    from matplotlib import font_manager

    def entries() -> list[object]:
        return [e for e in font_manager.fontManager.ttflist if e.fname == str(font.path)]

    found = entries()
    if not found:
        font_manager.fontManager.addfont(str(font.path))
        found = entries()
    same_face = [e for e in found if getattr(e, "index", 0) == font.index and e.weight in (400, "normal", "regular")]
    entry = (same_face or [e for e in found if getattr(e, "index", 0) == font.index] or found)[0]
    return str(entry.name)  # type: ignore[attr-defined]


def _properties(font: CjkFont, size: float) -> FontProperties:
    from matplotlib.font_manager import FontProperties

    return FontProperties(family=[_family(font), "DejaVu Sans"], size=size)


def _figure(height_in: float, *, left_in: float = 0.5):  # type: ignore[no-untyped-def]
    """A figure with fixed margins (in inches; a constrained layout would draw every text twice more)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    figure.subplots_adjust(left=left_in / WIDTH_IN, right=1 - 0.25 / WIDTH_IN, top=1 - 0.4 / height_in,
                           bottom=0.35 / height_in)
    return figure


def _png(figure) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _legend(axes, font: CjkFont, series: Series) -> None:  # type: ignore[no-untyped-def]
    """Above the plot on the right, beside the title: never over a bar or a point."""
    if len(series) > 1:
        axes.legend(prop=_properties(font, 8), loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(series),
                    frameon=False, borderaxespad=0.2)


def _style(axes, font: CjkFont, title: str) -> None:  # type: ignore[no-untyped-def]
    axes.set_title(title, fontproperties=_properties(font, 11), loc="left")
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)
    # Tick labels are made again whenever the figure is drawn: their font is a tick parameter.
    axes.tick_params(labelfontfamily=_family(font), labelsize=8.5)


def bars(title: str, labels: Sequence[str], series: Series, *, font: CjkFont) -> bytes:
    """Horizontal bars, one group per label (long Chinese names read across), one colour per series,
    each bar with its value; the first label on top."""
    longest = max((len(label) for label in labels), default=1)
    figure = _figure(max(1.6, 0.8 + 0.2 * len(labels) * max(1, len(series))), left_in=0.2 + 0.125 * min(longest, 16))
    axes = figure.subplots()
    count = max(1, len(series))
    height = 0.8 / count
    positions = list(range(len(labels)))
    for index, (name, values) in enumerate(series):
        offsets = [p - 0.4 + height * (index + 0.5) for p in positions]
        drawn = axes.barh(offsets, list(values), height=height * 0.92, label=name, color=COLOURS[index % len(COLOURS)])
        axes.bar_label(drawn, labels=[_number(v) for v in values], padding=2, fontsize=7.5)
    axes.set_yticks(positions, labels=list(labels))
    axes.invert_yaxis()
    axes.margins(x=0.12)
    axes.xaxis.get_major_locator().set_params(integer=True)
    _legend(axes, font, series)
    _style(axes, font, title)
    return _png(figure)


def lines(title: str, labels: Sequence[str], series: Series, *, font: CjkFont) -> bytes:
    """A line per series over ``labels`` (the months of a quarter or year), points marked and numbered."""
    figure = _figure(2.6)
    axes = figure.subplots()
    for index, (name, values) in enumerate(series):
        axes.plot(list(labels), list(values), marker="o", label=name, color=COLOURS[index % len(COLOURS)])
        for x, y in zip(labels, values, strict=True):
            # The first series' numbers above its points, the next one's below: equal values stay readable.
            axes.annotate(_number(y), (x, y), textcoords="offset points", xytext=(0, 5 if index == 0 else -11),
                          ha="center", fontsize=7, color=COLOURS[index % len(COLOURS)])
    top = max((max(values, default=0) for _, values in series), default=0) or 1
    axes.set_ylim(-0.12 * top, top * 1.18)  # room under the lowest points for the second series' numbers
    axes.yaxis.get_major_locator().set_params(integer=True)
    _legend(axes, font, series)
    _style(axes, font, title)
    return _png(figure)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
