"""Chinese search over opinion forms (issue 19.1): docs/search.md says how and why.

Words, not letters: a form's content, reply, location and tracking number are cut into *tokens* in Python
when they are written — overlapping pairs of CJK characters (``村口路灯`` → ``村口 口路 路灯``, then the
run's last character alone, ``灯``) and lower-cased runs of letters or of digits with their suffixes
(``LS2026-00108`` → ``ls 2026 026 26 00108 0108 108 08``) — and kept in ``form_search``, one row per
form: a ``tsvector`` with a GIN index on
PostgreSQL (built from positions and weights given here, never by the database's parser, so the locale
changes nothing), an FTS5 table on SQLite (its ``ascii`` tokenizer only splits on the spaces put here).

A search is cut the same way: a word of two characters is one token, a longer one the phrase of its
pairs, one character a prefix (``灯*``: the pairs that start with it and the runs that end with it), the
last letters or digits of a word a prefix (of a piece or of a suffix: ``26-001`` finds ``LS2026-00108``).
Words separated by spaces must all match. The index finds
candidates; a substring test on the stored text (``ILIKE``, wildcards escaped) then keeps only the forms
that contain each word as written, so what is found is exact. A word with no letter, digit or CJK
character (``%``, ``-``) is found by the substring test alone (a scan of the forms the other filters
leave).

The newest matches are found by ``newest`` without reading every match of a common word: a walk over the
newest forms (a common word is met soon), else a probe of the index (a rare one has few matches), else a
longer walk. Relevance ranks the newest ``WINDOW`` matches by ``ts_rank`` / ``bm25`` (content and tracking
number weigh most, then location, then the reply); older matches follow newest first. Ranking every match
of a common word (100,000 forms) would read every one; this way a page costs about the same at any size.

Every write of those four fields goes through ``index`` in the writer's transaction: ``forms.submit_many``
(every door: API, pages, Open311, WeChat, the group commit, the demo) and ``workflow._transition`` (reply,
answer on the spot, reopen, and any later action that changes a searched field). ``bench/load.py`` and
migration 0015 write the same tokens in bulk; ``verify`` compares the stored tokens with the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import (Integer, Select, and_, bindparam, cast, column, func, inspect, literal, literal_column, or_,
                        select, table, text)
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Invalid
from app.models import OpinionForm
from app.models.forms import SEARCH_TABLE

# --- tokens --------------------------------------------------------------------------------------------

# CJK characters: Han (basic, extension A, compatibility, the supplementary planes), 々〆〇, kana, Hangul.
_CJK = "\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
# A run of CJK characters, or a run of other letters and digits (``\w`` without ``_`` and without CJK).
_RUNS = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")
_PIECES = re.compile(r"\d+|\D+")  # a word's runs of digits and of everything else: ``ls2026`` → ls, 2026

MAX_TOKEN = 64  # characters of a token kept (PostgreSQL refuses a lexeme over 2 kB); a query's are cut alike
MAX_POSITION = 16_383  # PostgreSQL's largest token position (later ones are kept there)
MAX_POSITIONS = 256  # PostgreSQL keeps at most this many positions of one token


def tokens(text: str | None) -> list[str]:
    """``text``'s tokens in order: per CJK run its pairs then its last character; per word its pieces, each
    followed by its suffixes of two characters or more (``00108`` → ``00108 0108 108 08``: a number or a
    word is found from inside too, ``0108``, ``s2026``)."""
    out: list[str] = []
    if not text:
        return out
    for run, word in _RUNS.findall(text):
        if run:
            out += [run[i:i + 2] for i in range(len(run) - 1)]
            out.append(run[-1])
        else:
            for piece in _PIECES.findall(word.lower()):
                piece = piece[:MAX_TOKEN]
                out.append(piece)
                out += [piece[i:] for i in range(1, len(piece) - 1)]
    return out


# The searched fields, in the order of the SQLite table's columns, with PostgreSQL's weight (A weighs most).
FIELDS: tuple[tuple[str, str], ...] = (("content", "A"), ("tracking_no", "A"), ("location", "B"), ("reply", "C"))


def tsvector_text(fields: dict[str, str | None]) -> str:
    """The form's PostgreSQL ``tsvector`` in its input syntax (``'路灯':1A,7A '灯坏':2A``): each token with its
    positions and field weight (a piece's suffixes at the piece's position), written here so the database's
    parser and locale play no part. Fields follow each other with a gap, so no phrase runs from one into the
    next. (A hot path: every submission, and the bench loader's millions.)"""
    positions: dict[str, list[str]] = {}
    position = 0

    def add(token: str) -> None:
        at = positions.get(token)
        if at is None:
            positions[token] = [f"{min(position, MAX_POSITION)}{weight}"]
        elif len(at) < MAX_POSITIONS:
            at.append(f"{min(position, MAX_POSITION)}{weight}")

    for name, weight in FIELDS:
        text = fields.get(name)
        if text:
            for run, word in _RUNS.findall(text):
                if run:
                    for i in range(len(run) - 1):
                        position += 1
                        add(run[i:i + 2])
                    position += 1
                    add(run[-1])
                else:
                    for piece in _PIECES.findall(word.lower()):
                        piece = piece[:MAX_TOKEN]
                        position += 1
                        add(piece)
                        for i in range(1, len(piece) - 1):
                            add(piece[i:])
        position += 1
    # Tokens are letters and digits only: no quote or backslash to escape.
    return " ".join(f"'{token}':{','.join(at)}" for token, at in positions.items())


def fts5_columns(fields: dict[str, str | None]) -> dict[str, str]:
    """The form's SQLite FTS5 row: per field, its tokens separated by spaces."""
    return {name: " ".join(tokens(fields.get(name))) for name, _ in FIELDS}


# --- the search ----------------------------------------------------------------------------------------

MAX_WORDS = 10  # words separated by spaces; more is refused (422), never a slow query


@dataclass(frozen=True)
class Atom:
    """One thing the index must hold: a phrase of tokens (one token for a two-character word), or one
    token as a prefix."""

    tokens: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Word:
    """A word of the search as typed, and what the index must hold for a form to contain it."""

    text: str
    atoms: tuple[Atom, ...]


@dataclass(frozen=True)
class Search:
    words: tuple[Word, ...]

    @property
    def indexed(self) -> bool:
        """Whether the index narrows the search (some word has letters, digits or CJK characters)."""
        return any(word.atoms for word in self.words)


def words_of(q: str) -> list[str]:
    """The distinct words of ``q`` (split on any space, full-width too), in order."""
    seen: list[str] = []
    for word in q.split():
        if word not in seen:
            seen.append(word)
    return seen


def check(q: str) -> str:
    """``q`` if it can be searched; else Invalid (too many words)."""
    if len(words_of(q)) > MAX_WORDS:
        raise Invalid(f"关键词最多 {MAX_WORDS} 个（以空格分隔）。", code="too_many_words")
    return q


def parse(q: str) -> Search:
    """``q``'s words and what the index must hold for each (module docstring); Invalid past MAX_WORDS."""
    check(q)
    words = []
    for word in words_of(q):
        atoms: list[Atom] = []
        matches = list(_RUNS.finditer(word))
        for position, match in enumerate(matches):
            run, letters = match.group(1), match.group(2)
            if run:
                if len(run) == 1:  # one character: the pairs that start with it, or a run that ends with it
                    atoms.append(Atom((run,), prefix=True))
                else:  # every pair of the run, one after another
                    atoms.append(Atom(tuple(run[i:i + 2] for i in range(len(run) - 1))))
            else:
                pieces = _PIECES.findall(letters.lower())
                at_start = position == 0 and match.start() == 0
                at_end = position == len(matches) - 1 and match.end() == len(word)
                for i, piece in enumerate(pieces):
                    # The word's first letters or digits may begin inside a piece of the text: they are one of
                    # its suffixes (stored from two characters on; one character alone is left to the
                    # substring test). Its last ones may go on in the text: a prefix (``00`` finds ``00108``).
                    if i == 0 and at_start and len(piece) == 1:
                        continue
                    atoms.append(Atom((piece[:MAX_TOKEN],), prefix=at_end and i == len(pieces) - 1))
        unique = tuple(dict.fromkeys(atoms))
        words.append(Word(word, unique))
    return Search(tuple(words))


def tsquery_text(search: Search, *, phrases: bool = True) -> str:
    """The PostgreSQL ``tsquery`` (input syntax, no parser) every word's atoms must match. ``phrases=False``:
    a phrase's pairs anywhere, in any order — no cheaper to find, but the database then need not read each
    candidate's positions to check them; where the substring test follows, the result is the same (a
    word's characters in a row have their pairs in a row)."""
    def quoted(token: str) -> str:
        return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"

    parts = []
    for word in search.words:
        for atom in word.atoms:
            if atom.prefix:
                parts.append(quoted(atom.tokens[0]) + ":*")
            else:
                parts.append("(" + (" <-> " if phrases else " & ").join(quoted(t) for t in atom.tokens) + ")")
    return " & ".join(dict.fromkeys(parts))


def fts5_query_text(search: Search) -> str:
    """The SQLite FTS5 query: every atom as a quoted phrase (tokens are letters and digits, never a quote
    or an operator of FTS5's syntax), a prefix marked ``*``, all joined by AND."""
    parts = []
    for word in search.words:
        for atom in word.atoms:
            phrase = '"' + " ".join(atom.tokens) + '"'
            parts.append(phrase + "*" if atom.prefix else phrase)
    return " AND ".join(dict.fromkeys(parts))


# --- the index -----------------------------------------------------------------------------------------

_pg = table(SEARCH_TABLE, column("form_id", Integer), column("document", TSVECTOR))
SEARCHED = tuple(name for name, _ in FIELDS)
# Relevance weights, per field as in FIELDS: PostgreSQL's ts_rank takes them per weight letter {D, C, B, A};
# SQLite's bm25 per column.
_PG_WEIGHTS = literal_column("'{0.1, 0.2, 0.4, 1.0}'::real[]")
_FTS5_WEIGHTS = "1.0, 1.0, 0.4, 0.2"


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _fields(form: Any) -> dict[str, str | None]:
    return {name: getattr(form, name) for name in SEARCHED}


async def index(session: AsyncSession, forms: Sequence[Any]) -> None:
    """Write (or rewrite) the search row of each form, from its current content, tracking number, location
    and reply, in the caller's transaction."""
    if not forms:
        return
    if _dialect(session) == "postgresql":
        # One statement of two arrays for the whole batch (the group commit's): a row each would cost the
        # app a third more CPU per submission.
        await session.execute(
            text(f"INSERT INTO {SEARCH_TABLE} (form_id, document)"
                 " SELECT id, CAST(document AS tsvector) FROM unnest(CAST(:ids AS integer[]), CAST(:documents AS text[]))"
                 " AS batch(id, document)"
                 " ON CONFLICT (form_id) DO UPDATE SET document = excluded.document"),
            {"ids": [form.id for form in forms], "documents": [tsvector_text(_fields(form)) for form in forms]},
        )
    else:
        await session.execute(text(f"DELETE FROM {SEARCH_TABLE} WHERE rowid IN :ids").bindparams(
            bindparam("ids", expanding=True)), {"ids": [form.id for form in forms]})
        names = ", ".join(SEARCHED)
        await session.execute(
            text(f"INSERT INTO {SEARCH_TABLE} (rowid, {names}) VALUES (:id, {', '.join(':' + n for n in SEARCHED)})"),
            [{"id": form.id, **fts5_columns(_fields(form))} for form in forms],
        )


def changed(form: Any) -> bool:
    """Whether a loaded form has unsaved changes to a searched field (then ``index`` it)."""
    state = inspect(form)
    return any(state.attrs[name].history.has_changes() for name in SEARCHED)


async def verify(session: AsyncSession, form_ids: Sequence[int]) -> list[int]:
    """The forms among ``form_ids`` whose search row is missing or differs from their text now."""
    rows = (await session.execute(
        select(OpinionForm.id, *(getattr(OpinionForm, n) for n in SEARCHED)).where(OpinionForm.id.in_(form_ids))
    )).all()
    wrong = []
    for form_id, *values in rows:
        fields = dict(zip(SEARCHED, values, strict=True))
        if _dialect(session) == "postgresql":
            same = await session.scalar(
                select(_pg.c.document == cast(literal(tsvector_text(fields)), TSVECTOR)).where(_pg.c.form_id == form_id))
        else:
            stored = (await session.execute(text(f"SELECT {', '.join(SEARCHED)} FROM {SEARCH_TABLE} WHERE rowid = :id"),
                                            {"id": form_id})).first()
            same = stored is not None and dict(zip(SEARCHED, stored, strict=True)) == fts5_columns(fields)
        if not same:
            wrong.append(form_id)
    return wrong


# --- finding -------------------------------------------------------------------------------------------

WINDOW = 100  # relevance ranks the newest this many matching forms; older ones follow newest first
# ``newest``'s steps: a first walk over the newest forms, WALK_ROWS_PER_MATCH per match wanted (within
# WALK_ROWS_MIN…WALK_ROWS_MAX); a probe of the index for up to PROBE older matches; a longer walk of up to
# WALK_ROWS_MAX forms.
WALK_ROWS_PER_MATCH = 20
WALK_ROWS_MIN, WALK_ROWS_MAX = 2_000, 50_000
PROBE = 10_000


def _like(text_: str) -> str:
    return "%" + text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contains(search: Search, columns: Any = None) -> Any:
    """The exact test: every word is a substring (any case) of the content, reply, location or tracking
    number. ``columns``: where to read them (a subquery's columns; the form's own by default)."""
    columns = columns if columns is not None else OpinionForm.__table__.c
    return and_(*(or_(*(columns[name].ilike(_like(word.text), escape="\\") for name in SEARCHED))
                  for word in search.words))


def _index_ids(session: AsyncSession, search: Search) -> Any:
    """The ids of the forms whose tokens hold every word's atoms, from the index."""
    if _dialect(session) == "postgresql":
        return select(_pg.c.form_id).where(_pg.c.document.op("@@")(cast(literal(tsquery_text(search)), TSQUERY)))
    return text(f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :fts").bindparams(
        fts=fts5_query_text(search)).columns(column("rowid", Integer))


def _matches_row(session: AsyncSession, search: Search, form_id: Any) -> Any:
    """The same test for one form, by its id: on PostgreSQL a lookup of that form's row by key (so a walk
    over the newest forms reads one row each, however common the word); on SQLite through the index."""
    if _dialect(session) == "postgresql":
        return (select(_pg.c.document.op("@@")(cast(literal(tsquery_text(search)), TSQUERY)))
                .where(_pg.c.form_id == form_id).scalar_subquery())
    return form_id.in_(_index_ids(session, search))


def condition(session: AsyncSession, search: Search) -> Any:
    """The forms that match ``search``: in the index (when a word has something to look up), and each word
    a substring of their text."""
    if not search.indexed:
        return contains(search)
    return and_(OpinionForm.id.in_(_index_ids(session, search)), contains(search))


def walk_rows(n: int) -> int:
    return min(max(WALK_ROWS_MIN, WALK_ROWS_PER_MATCH * n), WALK_ROWS_MAX)


async def _walk(session: AsyncSession, base: Select[Any], search: Search, *, n: int, before: int | None,
                rows: int) -> tuple[list[int], int | None]:
    """The newest ``rows`` forms of ``base`` below ``before``, one by one: those that match (at most ``n``),
    and, if fewer than ``n``, the oldest form read (None: there were fewer than ``rows``, all read)."""
    ids = OpinionForm.id
    scope = base.with_only_columns(ids, *(getattr(OpinionForm, name) for name in SEARCHED))
    if before is not None:
        scope = scope.where(ids < before)
    walked = scope.order_by(ids.desc()).limit(rows).subquery()
    found = list(await session.scalars(
        select(walked.c.id).where(contains(search, walked.c), _matches_row(session, search, walked.c.id))
        .order_by(walked.c.id.desc()).limit(n)
    ))
    if len(found) >= n:
        return found, None
    edge_query = base.with_only_columns(ids)
    if before is not None:
        edge_query = edge_query.where(ids < before)
    return found, await session.scalar(edge_query.order_by(ids.desc()).offset(rows - 1).limit(1))


async def _probe(session: AsyncSession, search: Search, *, below: int, limit: int) -> list[int]:
    """Up to ``limit`` ids of forms below ``below`` whose tokens match (on PostgreSQL a phrase's pairs in
    any order: a few more), straight from the index, in no order. PostgreSQL reads them through the GIN
    index only (a bitmap): left to itself it may scan the table instead for a word it thinks common, which
    is what the walk was for."""
    if _dialect(session) != "postgresql":
        return list(await session.scalars(text(
            f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :fts AND rowid < :below LIMIT :limit"
        ), {"fts": fts5_query_text(search), "below": below, "limit": limit}))
    # For this statement only (``true``: and at most until the transaction ends, whatever happens).
    await session.execute(text("SELECT set_config('enable_seqscan', 'off', true), set_config('enable_indexscan', 'off', true)"))
    # Pairs without their order: the substring test that follows checks that.
    found = list(await session.scalars(
        select(_pg.c.form_id).where(_pg.c.document.op("@@")(cast(literal(tsquery_text(search, phrases=False)), TSQUERY)),
                                    _pg.c.form_id < below).limit(limit)))
    await session.execute(text("SELECT set_config('enable_seqscan', 'on', true), set_config('enable_indexscan', 'on', true)"))
    return found


async def newest(session: AsyncSession, base: Select[Any], search: Search, *, n: int,
                 before: int | None = None) -> list[int]:
    """The ids of the newest ``n`` forms of ``base`` (the list's other filters, unordered) that match
    ``search``, newest first, below ``before`` if given: exactly ``base.where(condition(...))`` ordered by
    id, read in a way whose cost does not grow with the number of forms (docs/search.md):

    1. Walk the newest forms of ``base`` (``walk_rows(n)``), each tested with the substring test, then its
       own search row. A common word (in 1 form of 20 or more) ends here.
    2. Probe the index for up to ``PROBE`` matches older than the walk reached. Fewer: that is all of them;
       the filters and the substring test keep the newest (a rare word, or words seldom found together).
    3. Else the word is common enough to walk on, up to ``WALK_ROWS_MAX`` more forms; and if even that is
       short (the other filters leave few forms), the database's own plan for the rest.
    """
    ids = OpinionForm.id
    if not search.indexed:  # only a substring test: nothing narrows it, newest first until n are found
        query = base.with_only_columns(ids).where(contains(search))
        if before is not None:
            query = query.where(ids < before)
        return list(await session.scalars(query.order_by(ids.desc()).limit(n)))
    if _dialect(session) == "postgresql":
        # Plans for these values, never a generic one: after five runs of one statement PostgreSQL may plan it
        # once for any search, and a plan for a common word walks millions of forms for a rare one (2 s).
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    found, edge = await _walk(session, base, search, n=n, before=before, rows=walk_rows(n))
    if len(found) >= n or edge is None:
        return found
    older = await _probe(session, search, below=edge, limit=PROBE)
    if len(older) < PROBE:
        if older:
            among = base.with_only_columns(ids).where(ids.in_(older), contains(search))
            found += list(await session.scalars(among.order_by(ids.desc()).limit(n - len(found))))
        return found
    more, edge = await _walk(session, base, search, n=n - len(found), before=edge, rows=WALK_ROWS_MAX)
    found += more
    if len(found) >= n or edge is None:
        return found
    rest = base.with_only_columns(ids).where(ids < edge, condition(session, search))
    found += list(await session.scalars(rest.order_by(ids.desc()).limit(n - len(found))))
    return found


async def ranked(session: AsyncSession, search: Search, form_ids: Sequence[int]) -> list[int]:
    """``form_ids`` (newest first) with their first ``WINDOW`` ordered by relevance (then newest first),
    the rest as they were."""
    window, rest = list(form_ids[:WINDOW]), list(form_ids[WINDOW:])
    if not window or not search.indexed:
        return [*window, *rest]
    if _dialect(session) == "postgresql":
        tsquery = cast(literal(tsquery_text(search)), TSQUERY)
        rows = await session.execute(
            select(_pg.c.form_id, func.ts_rank(_PG_WEIGHTS, _pg.c.document, tsquery))
            .where(_pg.c.form_id.in_(window)))
        score = {form_id: float(rank) for form_id, rank in rows}
    else:
        rows = await session.execute(text(
            f"SELECT rowid, bm25({SEARCH_TABLE}, {_FTS5_WEIGHTS}) FROM {SEARCH_TABLE}"
            f" WHERE {SEARCH_TABLE} MATCH :fts AND rowid IN :ids"
        ).bindparams(bindparam("ids", expanding=True)), {"fts": fts5_query_text(search), "ids": window})
        score = {form_id: -float(rank) for form_id, rank in rows}  # bm25: the lower, the better
    return [*sorted(window, key=lambda i: (-score.get(i, 0.0), -i)), *rest]



# --- showing what matched ------------------------------------------------------------------------------


def _spans(text_: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Where the words occur in ``text_`` (any case), overlapping ones merged, in order."""
    if not words or not text_:
        return []
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    spans: list[tuple[int, int]] = []
    for match in pattern.finditer(text_):
        start, end = match.span()
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


def _marked(text_: str, spans: Sequence[tuple[int, int]], width: int) -> Markup:
    start = 0
    if len(text_) > width and spans:
        start = max(0, min(spans[0][0] - width // 4, len(text_) - width))
    end = min(len(text_), start + width)
    out = [Markup("…") if start > 0 else Markup("")]
    at = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        out.append(escape(text_[at:s]))
        out.append(Markup("<mark>") + escape(text_[s:e]) + Markup("</mark>"))
        at = e
    out.append(escape(text_[at:end]))
    if end < len(text_):
        out.append(Markup("…"))
    return Markup("").join(out)


def highlight(text_: str | None, q: str | None, width: int) -> Markup:
    """At most ``width`` characters of ``text_`` around the first place a word of ``q`` occurs, each
    occurrence in ``<mark>``, everything else escaped; "…" where the text was cut."""
    return _marked(text_ or "", _spans(text_ or "", words_of(q or "")), width)


@dataclass(frozen=True)
class Snippet:
    """What a list shows of a found form: its content with the words marked, and where the words not in
    the content were found (reply, location) likewise."""

    content: Markup
    elsewhere: tuple[tuple[str, Markup], ...] = ()


_ELSEWHERE = (("reply", "答复"), ("location", "地点"))


def snippets(form: Any, q: str | None, widths: Sequence[int]) -> list[Snippet]:
    """The form's snippet at each of ``widths`` (the desk's table and the phone's cards), its text searched
    once."""
    words = words_of(q or "")
    content = form.content or ""
    spans = _spans(content, words)
    lowered = content.lower()
    missing = [w for w in words if w.lower() not in lowered]
    others = []
    for name, label in _ELSEWHERE:
        value = getattr(form, name, None)
        if missing and value and _spans(value, missing):
            others.append((label, value, _spans(value, words)))
    return [Snippet(_marked(content, spans, width), tuple((label, _marked(value, at, width)) for label, value, at in others))
            for width in widths]
