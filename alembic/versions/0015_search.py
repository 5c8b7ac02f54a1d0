"""form_search: the Chinese search index, one row of tokens per form, filled from the forms

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 12:00:00

Issue 19.1 (app/services/search.py, docs/search.md). PostgreSQL: a table ``form_search (form_id, document
tsvector)`` with a GIN index on ``document``, the row deleted with its form. SQLite: an FTS5 table (rowid =
the form's id; columns content, tracking_no, location, reply) whose ``ascii`` tokenizer splits only on the
spaces between the tokens written here.

The existing forms are tokenized here, 2,000 at a time in id order (memory does not grow with the number
of forms; on PostgreSQL each batch is one INSERT of two arrays), and the GIN index is built after the fill.
The tokenizer below is this revision's own copy, frozen with it (a migration never imports app code that
changes later); tests/test_search.py checks it still cuts text as the app does. A later change to the app's
tokenizer comes with a migration that tokenizes the forms again.
"""

import re
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2_000
FIELDS = (("content", "A"), ("tracking_no", "A"), ("location", "B"), ("reply", "C"))

# --- the tokenizer as of this revision (app/services/search.py) -----------------------------------------

_CJK = "\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
_RUNS = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")
_PIECES = re.compile(r"\d+|\D+")
MAX_TOKEN, MAX_POSITION, MAX_POSITIONS = 64, 16_383, 256


def tokens(text: str | None) -> list[str]:
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


def tsvector_text(fields: dict[str, str | None]) -> str:
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
    return {name: " ".join(tokens(fields.get(name))) for name, _ in FIELDS}


# --- the migration -------------------------------------------------------------------------------------


def _batches(connection: sa.Connection) -> Iterator[list[dict[str, object]]]:
    last = 0
    while True:
        rows = connection.execute(sa.text(
            "SELECT id, content, tracking_no, location, reply FROM opinion_form WHERE id > :last ORDER BY id LIMIT :n"
        ), {"last": last, "n": BATCH}).mappings().all()
        if not rows:
            return
        last = rows[-1]["id"]
        yield [dict(row) for row in rows]


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        op.create_table(
            'form_search',
            sa.Column('form_id', sa.Integer(), nullable=False),
            sa.Column('document', postgresql.TSVECTOR(), nullable=False),
            sa.ForeignKeyConstraint(['form_id'], ['opinion_form.id'], name='fk_form_search_form_id_opinion_form',
                                    ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('form_id', name='pk_form_search'),
        )
        for batch in _batches(connection):
            connection.execute(sa.text(
                "INSERT INTO form_search (form_id, document)"
                " SELECT id, CAST(document AS tsvector) FROM unnest(CAST(:ids AS integer[]), CAST(:documents AS text[]))"
                " AS t(id, document)"
            ), {"ids": [r["id"] for r in batch], "documents": [tsvector_text(r) for r in batch]})
        op.execute("CREATE INDEX ix_form_search_document ON form_search USING gin (document)")
    else:
        op.execute("CREATE VIRTUAL TABLE form_search USING fts5(content, tracking_no, location, reply, tokenize = 'ascii')")
        for batch in _batches(connection):
            connection.execute(sa.text(
                "INSERT INTO form_search (rowid, content, tracking_no, location, reply)"
                " VALUES (:id, :content, :tracking_no, :location, :reply)"
            ), [{"id": r["id"], **fts5_columns(r)} for r in batch])


def downgrade() -> None:
    op.execute("DROP TABLE form_search")
