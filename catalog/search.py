"""Catalog search: keywords over names, abstracts and data-item names, filters, ranking, paging.

What is indexed
    Every entry keeps ``catalog_entries.search_text``: its name, its abstract, then one line per
    data item (English name and Chinese title), each NFKC-normalised (全角 → 半角), case-folded
    and with its whitespace collapsed (:func:`compose_search_text`). A ``before_flush`` listener
    on every ORM session recomputes it whenever an entry or one of its data items is added,
    changed or removed, whichever code does it (a spec registration, a spreadsheet import, an
    edit); only raw SQL that bypasses the ORM leaves it stale (:func:`reindex` repairs that).

How it matches
    A query is normalised the same way and split at whitespace into terms; an entry matches when
    every term occurs in its text as a substring (no word segmentation: ``人口`` finds 常住人口信息).
    Characters are literal: quotes, ``*``, ``-``, ``NEAR``, parentheses, ``%`` and ``_`` mean
    themselves.

    - SQLite: an FTS5 table ``catalog_entries_fts`` with the ``trigram`` tokenizer indexes
      ``search_text`` (external content, kept in step by triggers). Terms of 3 or more characters
      are looked up in it (``MATCH``, each term one quoted phrase); ``bm25`` gives the relevance.
    - PostgreSQL: a GIN index with ``pg_trgm``'s ``gin_trgm_ops`` on ``search_text`` serves
      ``LIKE '%term%'`` (``%``, ``_`` escaped) for terms of 3 or more characters; for entries
      whose name holds the first word, ``similarity`` of the query and the name gives the
      relevance (the others tie, and the entry id orders them).
    - Terms of 1 or 2 characters (人口, 法人, 企业 are common) have no trigram, so no index can
      look them up: they are checked with ``instr`` (SQLite) or ``LIKE '%term%'`` (PostgreSQL)
      over ``search_text``. That scans the entries left by the other conditions (the visibility
      rule, the filters and, on SQLite, the FTS lookup of the query's longer terms).

How it ranks
    Each term scores by where it first occurs: in the name 2, in the abstract 1, in a data item 0
    (so a name match ranks above an abstract match above an item match); the engine's relevance
    (in [0, 1): bm25 on SQLite, similarity to the name on PostgreSQL) orders within those, then the
    entry id. ``Hit.section`` says where the first term matched best. Other orders: name, id,
    modified, created, published (the entry id always breaks ties).

Who sees what
    :func:`catalog.access.visibility_filter`: anonymous readers see published entries only.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    and_,
    case,
    cast,
    column,
    event,
    func,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.sql.functions import Function

from catalog.models import ClassificationNode, DataItem, Department, Entry, Version
from pipelines.errors import TerminalError
from pipelines.spec import SHARE_TYPE_ALIASES, ClassificationAxis, FormatCategory, ShareType, UpdateCycle

if TYPE_CHECKING:  # catalog.access imports catalog.models, which imports this module
    from catalog.access import Viewer

__all__ = [
    "FACETS",
    "MAX_QUERY_CHARS",
    "MAX_ROWS",
    "MAX_TERMS",
    "SORT_KEYS",
    "Filters",
    "Hit",
    "Results",
    "SearchError",
    "compose_search_text",
    "install_sqlite_index",
    "normalise",
    "reindex",
    "search",
    "terms",
]

#: Longest query accepted (characters, after trimming).
MAX_QUERY_CHARS = 200
#: Most terms in one query.
MAX_TERMS = 10
#: Most rows in one page.
MAX_ROWS = 1000
#: Largest offset accepted.
MAX_START = 2**31 - 1
#: Shortest term the trigram indexes can look up.
TRIGRAM = 3

FTS_TABLE = "catalog_entries_fts"

SORT_KEYS = ("score", "name", "id", "modified", "created", "published")
FACETS = ("department", "axis", "tags", "share_type", "update_cycle", "format_type", "format_category", "open")

AXIS_NAMES: dict[str, ClassificationAxis] = {
    **{a.value: a for a in ClassificationAxis},
    "base": ClassificationAxis.BASE,
    "theme": ClassificationAxis.THEME,
    "department": ClassificationAxis.DEPARTMENT,
    "基础信息资源": ClassificationAxis.BASE,
    "主题信息资源": ClassificationAxis.THEME,
    "部门信息资源": ClassificationAxis.DEPARTMENT,
}
AXIS_DIGIT = {ClassificationAxis.BASE: "1", ClassificationAxis.THEME: "2", ClassificationAxis.DEPARTMENT: "3"}

UPDATE_CYCLE_NAMES: dict[str, UpdateCycle] = {
    **{c.value: c for c in UpdateCycle},
    **{c.name.lower(): c for c in UpdateCycle},
    "real_time": UpdateCycle.REALTIME,
    "semiannual": UpdateCycle.HALF_YEARLY,
    "annual": UpdateCycle.YEARLY,
}
FORMAT_CATEGORY_NAMES: dict[str, FormatCategory] = {
    **{c.value: c for c in FormatCategory},
    **{c.name.lower(): c for c in FormatCategory},
    **{str(i): c for i, c in enumerate(FormatCategory, start=1)},  # the guide numbers them 1-7
}
SHARE_TYPE_NAMES: dict[str, ShareType] = {k.lower(): v for k, v in SHARE_TYPE_ALIASES.items()}


class SearchError(TerminalError):
    """A search request that cannot be answered as asked; ``field`` names the parameter."""

    def __init__(self, message: str, *, field: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


# --- the indexed text --------------------------------------------------------------------------


def normalise(value: str | None) -> str:
    """NFKC (全角 → 半角), case-folded, control characters as spaces, whitespace collapsed to one space."""
    if not value:
        return ""
    folded = unicodedata.normalize("NFKC", value).casefold()
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch for ch in folded)
    return " ".join(cleaned.split())


#: Ends the name in ``search_text`` (a control character: never part of a normalised query).
END_OF_NAME = "\x1f"
#: Ends the abstract in ``search_text``; data items follow, one per line.
END_OF_ABSTRACT = "\x1e"


def compose_search_text(name: str | None, abstract: str | None, items: Iterable[tuple[str | None, str | None]]) -> str:
    """``search_text`` of an entry: name, :data:`END_OF_NAME`, abstract, :data:`END_OF_ABSTRACT`, one line per item.

    The separators let the ranking tell where a term occurs with two ``instr`` calls; a query
    term never contains them (nor a newline), so it cannot match across two parts.
    """
    lines = [normalise(f"{n or ''} {t or ''}") for n, t in items]
    return normalise(name) + END_OF_NAME + normalise(abstract) + END_OF_ABSTRACT + "\n".join(lines)


def _entry_text(entry: Entry, deleted: set[int], pending: dict[str, list[DataItem]]) -> str:
    """The text of ``entry`` with its data items as they will be after this flush."""
    items: dict[int, DataItem] = {}
    for item in entry.items:
        if id(item) not in deleted:
            items[item.position] = item
    for item in pending.get(entry.id, ()):
        if id(item) not in deleted:
            items[item.position] = item
    ordered = [items[p] for p in sorted(items, key=lambda p: (p is None, p or 0))]
    return compose_search_text(entry.name, entry.abstract, [(i.name, i.title) for i in ordered])


_WATCHED = ("name", "abstract", "items")


@event.listens_for(Session, "before_flush")
def _keep_search_text(session: Session, _context: UOWTransaction, _instances: object) -> None:
    """Recompute ``search_text`` of every entry written in this flush (or whose data items are)."""
    new, dirty, deleted = list(session.new), list(session.dirty), list(session.deleted)
    touched: dict[int, Entry] = {}
    # Data items added by entry id alone (not through Entry.items): not in the entry's collection yet.
    pending: dict[str, list[DataItem]] = {}

    def entry_of(item: DataItem) -> Entry | None:
        if item.entry is not None:
            return item.entry
        if item.entry_id is None:
            return None
        return session.get(Entry, item.entry_id)

    for obj in new:
        if isinstance(obj, Entry):
            touched[id(obj)] = obj
        elif isinstance(obj, DataItem):
            if obj.entry is None and obj.entry_id is not None:
                pending.setdefault(obj.entry_id, []).append(obj)
            if (owner := entry_of(obj)) is not None:
                touched[id(owner)] = owner
    for obj in dirty:
        if isinstance(obj, Entry):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in _WATCHED) or not obj.search_text:
                touched[id(obj)] = obj
        elif isinstance(obj, DataItem) and session.is_modified(obj) and (owner := entry_of(obj)) is not None:
            touched[id(owner)] = owner
    for obj in deleted:
        if isinstance(obj, DataItem) and (owner := entry_of(obj)) is not None:
            touched[id(owner)] = owner
    gone = {id(obj) for obj in deleted}
    for entry in touched.values():
        if id(entry) in gone:
            continue
        value = _entry_text(entry, gone, pending)
        if entry.search_text != value:
            entry.search_text = value


def reindex(session: Session) -> int:
    """Recompute ``search_text`` of every entry (after writes that bypassed the ORM); returns how many changed."""
    changed = 0
    for entry in session.scalars(select(Entry)):
        value = compose_search_text(entry.name, entry.abstract, [(i.name, i.title) for i in entry.items])
        if entry.search_text != value:
            entry.search_text = value
            changed += 1
    session.flush()
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))
    return changed


#: The FTS5 table over ``search_text`` and the triggers that keep it in step (SQLite).
SQLITE_INDEX_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    "search_text, content='catalog_entries', content_rowid='rowid', tokenize='trigram')",
    f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_ai AFTER INSERT ON catalog_entries BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, search_text) VALUES (new.rowid, new.search_text); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_ad AFTER DELETE ON catalog_entries BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_text) VALUES ('delete', old.rowid, old.search_text); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_au AFTER UPDATE OF search_text ON catalog_entries BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_text) VALUES ('delete', old.rowid, old.search_text); "
    f"INSERT INTO {FTS_TABLE}(rowid, search_text) VALUES (new.rowid, new.search_text); END",
)
SQLITE_TRIGGERS = (f"{FTS_TABLE}_ai", f"{FTS_TABLE}_ad", f"{FTS_TABLE}_au")


def install_sqlite_index(connection: Connection) -> None:
    """Create (or re-create) the FTS5 index and its triggers, and rebuild it from ``search_text``.

    A migration that makes SQLite copy ``catalog_entries`` (batch mode) drops the triggers and may
    renumber the rowids the index points at: call this at its end.
    """
    for statement in SQLITE_INDEX_DDL:
        connection.exec_driver_sql(statement)
    connection.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")


def drop_sqlite_index(connection: Connection) -> None:
    for trigger in SQLITE_TRIGGERS:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")


def pg_trgm_schema(connection: Connection) -> str | None:
    """The schema pg_trgm is installed in (None: not installed)."""
    found = connection.execute(
        text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'pg_trgm'"
        )
    ).scalar()
    return None if found is None else str(found)


_PG_TRGM: dict[str, str] = {}


def _trgm_schema(session: Session) -> str:
    bind = session.get_bind()
    key = str(bind.engine.url) if hasattr(bind, "engine") else str(bind)
    schema = _PG_TRGM.get(key)
    if schema is None:
        schema = pg_trgm_schema(session.connection())
        if schema is None:
            raise TerminalError(
                "the PostgreSQL extension pg_trgm is not installed in the catalog database",
                hint="ask the database administrator to run CREATE EXTENSION pg_trgm in it, then retry",
            )
        _PG_TRGM[key] = schema
    return schema


# --- the request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Filters; several values of one filter are alternatives (OR), filters combine with AND.

    - ``department``: USCC (any case) or exact name
    - ``classification``: an axis (基础/主题/部门 or base/theme/department), a classification code
      prefix (digits, e.g. ``101``), or a classification node's name (e.g. 人口)
    - ``share_type``: 无条件共享/有条件共享/不予共享 or an alias (授权共享, 非共享, unconditional …)
    - ``update_cycle``: 实时 … 其他, or daily, weekly, monthly, quarterly, half_yearly, yearly …
    - ``format``: a format category (电子表格, 数据库 …, its number 1-7, or spreadsheet, database …)
      or a format type (xlsx, MySQL, Parquet …, any case)
    - ``open``: open to the public (True) or not (False)
    """

    department: Sequence[str] = ()
    classification: Sequence[str] = ()
    share_type: Sequence[str] = ()
    update_cycle: Sequence[str] = ()
    format: Sequence[str] = ()
    open: bool | None = None


@dataclass(frozen=True)
class Hit:
    """One entry found."""

    id: str
    name: str
    resource_code: str
    department: str
    department_uscc: str
    share_type: str
    update_cycle: str
    format_type: str
    open_to_public: bool
    status: str
    section: str | None  # where the first term matched best: name, abstract, items (None: no query)
    score: float


@dataclass(frozen=True)
class Results:
    """A page of results and the total count of matches."""

    query: str
    terms: list[str]
    total: int
    start: int
    rows: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def terms(query: str | None) -> list[str]:
    """The normalised, distinct terms of ``query``; a SearchError when it is too long or has too many."""
    raw = "" if query is None else str(query)
    _check_text(raw, "q", "query")
    if len(raw.strip()) > MAX_QUERY_CHARS:
        raise SearchError(
            f"the query is {len(raw.strip())} characters long; at most {MAX_QUERY_CHARS} are accepted",
            field="q",
            hint="search for a few distinctive words",
        )
    found: list[str] = []
    for term in normalise(raw).split(" "):
        if term and term not in found:
            found.append(term)
    if len(found) > MAX_TERMS:
        raise SearchError(
            f"the query has {len(found)} words; at most {MAX_TERMS} are accepted",
            field="q",
            hint="search for a few distinctive words",
        )
    return found


def _check_text(value: str, name: str, what: str) -> None:
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value) or "\x00" in value:
        raise SearchError(
            f"the {what} {value!r} contains a NUL or an unpaired surrogate, which is not text",
            field=name,
            hint="send the text as UTF-8",
        )


def _listing(values: Iterable[str], limit: int = 12) -> str:
    shown = sorted(dict.fromkeys(values))
    more = len(shown) - limit
    return ", ".join(shown[:limit]) + (f" … and {more} more" if more > 0 else "")


def _unknown(
    kind: str,
    field_name: str,
    value: str,
    valid: Iterable[str],
    extra: str = "",
    aliases: Iterable[str] = (),
    show_aliases: bool = True,
    aliases_are: str = "also accepted",
) -> SearchError:
    """An unknown filter value: named, with the closest valid one and the valid ones (then the aliases)."""
    valid = list(dict.fromkeys(valid))
    others = [a for a in dict.fromkeys(aliases) if a not in valid]
    near = difflib.get_close_matches(value, valid + others, n=1)
    listed = ", ".join(valid) if len(valid) <= 12 else _listing(valid)
    return SearchError(
        f"unknown {kind} {value!r}",
        field=field_name,
        hint=(f"did you mean {near[0]!r}? " if near else "")
        + f"valid: {listed}{extra}"
        + (f"; {aliases_are}: {_listing(others)}" if others and show_aliases else ""),
    )


def _values(value: Sequence[str] | str | None, name: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    found = []
    for item in items:
        text_value = str(item).strip()
        _check_text(text_value, name, f"{name} value")
        if text_value:
            found.append(text_value)
    return found


def _department_condition(session: Session, values: list[str]) -> ColumnElement[bool]:
    known = list(session.execute(select(Department.uscc, Department.name)))
    by_uscc = {str(u).upper(): str(u) for u, _ in known}
    by_name: dict[str, list[str]] = {}
    for u, n in known:
        by_name.setdefault(str(n), []).append(str(u))
    usccs: set[str] = set()
    for value in values:
        if value.upper() in by_uscc:
            usccs.add(by_uscc[value.upper()])
        elif value in by_name:
            usccs.update(by_name[value])
        else:
            raise _unknown(
                "department",
                "department",
                value,
                sorted(str(n) for _, n in known),
                extra=" (or a department's USCC)",
                aliases=sorted(str(u) for u, _ in known),
                show_aliases=False,
            )
    return Entry.department_uscc.in_(sorted(usccs))


def _classification_condition(session: Session, values: list[str]) -> ColumnElement[bool]:
    prefixes: set[str] = set()
    nodes: list[tuple[str, str]] | None = None
    for value in values:
        axis = AXIS_NAMES.get(value) or AXIS_NAMES.get(value.lower())
        if axis is not None:
            prefixes.add(AXIS_DIGIT[axis])
            continue
        if value.isascii() and value.isdigit():
            if value[0] not in "123":
                raise SearchError(
                    f"classification code {value!r} starts with {value[0]}; a classification code starts with "
                    "1 (基础), 2 (主题) or 3 (部门)",
                    field="classification",
                    hint="give a code prefix such as 101, an axis (基础, 主题, 部门) or a classification name",
                )
            prefixes.add(value)
            continue
        if nodes is None:
            nodes = [
                (str(c), str(n)) for c, n in session.execute(select(ClassificationNode.code, ClassificationNode.name))
            ]
        codes = [c for c, n in nodes if n == value]
        if not codes:
            raise _unknown(
                "classification",
                "classification",
                value,
                [a.value for a in ClassificationAxis] + [n for _, n in nodes],
                extra=" (an axis, a classification code prefix of digits, or a classification name)",
            )
        prefixes.update(codes)
    return or_(*(Entry.classification_code.startswith(p, autoescape=True) for p in sorted(prefixes)))


def _share_type_condition(values: list[str]) -> ColumnElement[bool]:
    kinds: set[ShareType] = set()
    for value in values:
        kind = SHARE_TYPE_ALIASES.get(value) or SHARE_TYPE_NAMES.get(value.lower())
        if kind is None:
            raise _unknown("share type", "share_type", value, [t.value for t in ShareType], aliases=SHARE_TYPE_ALIASES)
        kinds.add(kind)
    stored = sorted(alias for alias, kind in SHARE_TYPE_ALIASES.items() if kind in kinds)
    return Entry.share_type.in_(stored)


def _update_cycle_condition(values: list[str]) -> ColumnElement[bool]:
    cycles: set[str] = set()
    for value in values:
        cycle = UPDATE_CYCLE_NAMES.get(value) or UPDATE_CYCLE_NAMES.get(value.lower())
        if cycle is None:
            raise _unknown(
                "update cycle", "update_cycle", value, [c.value for c in UpdateCycle], aliases=UPDATE_CYCLE_NAMES
            )
        cycles.add(cycle.value)
    return Entry.update_cycle.in_(sorted(cycles))


def _format_condition(session: Session, values: list[str]) -> ColumnElement[bool]:
    categories: set[str] = set()
    types: set[str] = set()
    known_types: list[str] | None = None
    for value in values:
        category = FORMAT_CATEGORY_NAMES.get(value) or FORMAT_CATEGORY_NAMES.get(value.lower())
        if category is not None:
            categories.add(category.value)
            continue
        if known_types is None:
            known_types = [str(t) for t in session.scalars(select(Entry.format_type).distinct()) if t]
        matches = [t for t in known_types if t.casefold() == value.casefold()]
        if not matches:
            raise _unknown(
                "format",
                "format",
                value,
                [c.value for c in FormatCategory],
                extra=" (a format category, or its number 1-7)",
                aliases=known_types,
                aliases_are="or a format type used in the catalog",
            )
        types.update(matches)
    parts: list[ColumnElement[bool]] = []
    if categories:
        parts.append(Entry.format_category.in_(sorted(categories)))
    if types:
        parts.append(Entry.format_type.in_(sorted(types)))
    return or_(*parts)


def filter_conditions(session: Session, filters: Filters) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``filters``; a SearchError names an unknown value and the valid ones."""
    conditions: list[ColumnElement[bool]] = []
    if values := _values(filters.department, "department"):
        conditions.append(_department_condition(session, values))
    if values := _values(filters.classification, "classification"):
        conditions.append(_classification_condition(session, values))
    if values := _values(filters.share_type, "share_type"):
        conditions.append(_share_type_condition(values))
    if values := _values(filters.update_cycle, "update_cycle"):
        conditions.append(_update_cycle_condition(values))
    if values := _values(filters.format, "format"):
        conditions.append(_format_condition(session, values))
    if filters.open is not None:
        conditions.append(Entry.open_to_public.is_(bool(filters.open)))
    return conditions


# --- the query ---------------------------------------------------------------------------------


def section_of(search_text: str, term: str) -> str | None:
    """Where ``term`` first occurs in a ``search_text``: name, abstract or items (None: nowhere)."""
    at = search_text.find(term)
    if at < 0:
        return None
    if at < search_text.find(END_OF_NAME):
        return "name"
    return "abstract" if at < search_text.find(END_OF_ABSTRACT) else "items"


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def modified_column(dialect: str) -> ColumnElement[Any]:
    """When an entry last changed: its own row, its status, or its latest version (SQL expression)."""
    latest = (
        select(func.max(Version.published_at)).where(Version.entry_id == Entry.id).correlate(Entry).scalar_subquery()
    )
    parts = [
        Entry.updated_at,
        func.coalesce(latest, Entry.updated_at),
        func.coalesce(Entry.status_changed_at, Entry.updated_at),
    ]
    return func.greatest(*parts) if dialect == "postgresql" else func.max(*parts)


@dataclass
class _Plan:
    """The matching entries: FROM, WHERE, and the score expression."""

    source: Any
    conditions: list[ColumnElement[bool]]
    score: ColumnElement[Any]
    dialect: str

    def ids(self) -> Select[Any]:
        return select(Entry.id.label("id")).select_from(self.source).where(and_(*self.conditions))


def _plan(session: Session, words: list[str], filters: Filters, viewer: Viewer) -> _Plan:
    from catalog.access import visibility_filter

    dialect = session.get_bind().dialect.name
    conditions: list[ColumnElement[bool]] = [visibility_filter(viewer), *filter_conditions(session, filters)]
    st = Entry.search_text
    relevance: ColumnElement[Any] = literal(0.0, Float)
    source: Any = Entry.__table__
    if not words:
        return _Plan(source, conditions, literal(0.0, Float), dialect)
    position = func.strpos if dialect == "postgresql" else func.instr
    end_of_name = position(st, END_OF_NAME)
    end_of_abstract = position(st, END_OF_ABSTRACT)
    points: list[ColumnElement[Any]] = []
    for term in words:
        at = position(st, term)
        points.append(case((at < end_of_name, 2), (at < end_of_abstract, 1), else_=0))
    in_name = position(st, words[0]) < end_of_name
    long_terms = [t for t in words if len(t) >= TRIGRAM]
    if dialect == "sqlite" and long_terms:
        fts = table(FTS_TABLE, column("rowid", Integer))
        phrases = " AND ".join(map(_fts_phrase, long_terms))
        matched = (
            select(fts.c.rowid.label("fts_rowid"), func.bm25(literal_column(FTS_TABLE)).label("bm25"))
            .where(text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=phrases))
            .cte("matched")
            .prefix_with("MATERIALIZED")  # one full-text lookup, not one per entry row
        )
        source = source.join(matched, matched.c.fts_rowid == literal_column("catalog_entries.rowid"))
        raw = -matched.c.bm25  # bm25 is lower for better matches
        relevance = raw / (1.0 + raw)
        conditions += [func.instr(st, t) > 0 for t in words if len(t) < TRIGRAM]
    elif dialect == "sqlite":  # instr: no pattern to escape, and twice as fast as LIKE
        conditions += [func.instr(st, t) > 0 for t in words]
    else:  # LIKE: what the trigram index serves
        conditions += [st.contains(t, autoescape=True) for t in words]
        if dialect == "postgresql":
            # similarity() costs a trigram set per row: only for name matches, against the name alone
            # (over whole texts it took 50 ms per 1,000 entries).
            schema = _trgm_schema(session)
            name = func.split_part(st, END_OF_NAME, 1)
            similarity: Function[Any] = Function("similarity", literal(" ".join(words)), name, packagenames=(schema,))
            relevance = case((in_name, cast(similarity, Float) * 0.999), else_=literal(0.0, Float))
    total_points: ColumnElement[Any] = points[0]
    for p in points[1:]:
        total_points = total_points + p
    return _Plan(source, conditions, cast(total_points, Float) + relevance, dialect)


def _order(plan: _Plan, sort: Sequence[tuple[str, str]], score: Any) -> list[Any]:
    columns: dict[str, Any] = {
        "score": score,
        "name": Entry.name,
        "id": Entry.id,
        "modified": modified_column(plan.dialect),
        "created": Entry.created_at,
        "published": Entry.publish_date,
    }
    order: list[Any] = []
    seen: set[str] = set()
    for key, direction in sort:
        if key not in columns:
            raise SearchError(f"unknown sort key {key!r}", field="sort", hint=f"sort by one of: {', '.join(SORT_KEYS)}")
        if direction not in ("asc", "desc"):
            raise SearchError(f"unknown sort direction {direction!r} for {key!r}", field="sort", hint="use asc or desc")
        if key in seen:
            continue
        seen.add(key)
        col = columns[key]
        order.append(col.desc() if direction == "desc" else col.asc())
    if "id" not in seen:
        order.append(Entry.id.asc())
    return order


def _check_paging(start: int, rows: int) -> None:
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= MAX_START:
        raise SearchError(
            f"start {start!r} is not a whole number from 0 to {MAX_START}", field="start", hint="start at 0"
        )
    if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= MAX_ROWS:
        raise SearchError(
            f"rows {rows!r} is not a whole number from 0 to {MAX_ROWS}",
            field="rows",
            hint=f"ask for at most {MAX_ROWS} rows per page and page on with start",
        )


def search(
    session: Session,
    query: str | None = "",
    filters: Filters | None = None,
    *,
    viewer: Viewer | None = None,
    start: int = 0,
    rows: int = 20,
    sort: Sequence[tuple[str, str]] = (("score", "desc"),),
    facets: Sequence[str] = (),
    facet_limit: int = 50,
) -> Results:
    """Entries ``viewer`` may see that match ``query`` and ``filters``: one page and the total.

    ``start``/``rows`` page (``rows`` 0 gives the count and facets only); ``sort`` is a list of
    (key, ``asc``|``desc``) with keys from :data:`SORT_KEYS` (the entry id always breaks ties);
    ``facets`` names fields from :data:`FACETS` to count over all matches. ``viewer`` defaults
    to :data:`catalog.access.ANONYMOUS` (published entries only). A :class:`SearchError` names a
    bad parameter.
    """
    from catalog.access import ANONYMOUS

    viewer = ANONYMOUS if viewer is None else viewer
    _check_paging(start, rows)
    unknown = [f for f in facets if f not in FACETS]
    if unknown:
        raise SearchError(f"unknown facet {unknown[0]!r}", field="facet.field", hint=f"facet on: {', '.join(FACETS)}")
    words = terms(query)
    plan = _plan(session, words, filters or Filters(), viewer)
    score = plan.score.label("score")
    order = _order(plan, sort, score)
    matching = plan.ids().subquery("matching")
    # A separate count: SQLite sorts a window function's whole input, but keeps only the top rows for LIMIT.
    total = int(session.scalar(select(func.count()).select_from(matching)) or 0)
    hits: list[Hit] = []
    if rows and start < total:
        # Rank and cut the page on the entry table alone, then fetch the page's details.
        page = session.execute(
            select(Entry.id.label("id"), score)
            .select_from(plan.source)
            .where(and_(*plan.conditions))
            .order_by(*order)
            .offset(start)
            .limit(rows)
        ).all()
        details = {
            row.id: row
            for row in session.execute(
                select(
                    Entry.id,
                    Entry.name,
                    Entry.resource_code,
                    Department.name.label("department"),
                    Entry.department_uscc,
                    Entry.share_type,
                    Entry.update_cycle,
                    Entry.format_type,
                    Entry.open_to_public,
                    Entry.status,
                    Entry.search_text,
                )
                .join(Department, Department.uscc == Entry.department_uscc)
                .where(Entry.id.in_([r.id for r in page]))
            )
        }
        for ranked in page:
            row = details[ranked.id]
            hits.append(
                Hit(
                    id=row.id,
                    name=row.name,
                    resource_code=row.resource_code,
                    department=str(row.department),
                    department_uscc=row.department_uscc,
                    share_type=row.share_type,
                    update_cycle=row.update_cycle,
                    format_type=row.format_type,
                    open_to_public=bool(row.open_to_public),
                    status=row.status,
                    section=section_of(row.search_text, words[0]) if words else None,
                    score=round(float(ranked.score or 0.0), 6),
                )
            )
    counted = _facets(session, matching, facets, facet_limit) if facets else {}
    return Results(query=query or "", terms=words, total=total, start=start, rows=rows, hits=hits, facets=counted)


def _facets(session: Session, matching: Any, fields: Sequence[str], limit: int) -> dict[str, list[tuple[str, int]]]:
    columns = {
        "department": Entry.department_uscc,
        "axis": Entry.classification_axis,
        "share_type": Entry.share_type,
        "update_cycle": Entry.update_cycle,
        "format_type": Entry.format_type,
        "format_category": Entry.format_category,
        "open": Entry.open_to_public,
        "tags": Entry.classification_code,
    }
    found: dict[str, list[tuple[str, int]]] = {}
    names: dict[str, str] | None = None
    for name in dict.fromkeys(fields):
        col = columns[name]
        rows = session.execute(
            select(col, func.count()).select_from(Entry).join(matching, matching.c.id == Entry.id).group_by(col)
        ).all()
        counts: Counter[str] = Counter()
        if name == "tags":
            if names is None:
                names = {
                    str(c): str(n) for c, n in session.execute(select(ClassificationNode.code, ClassificationNode.name))
                }
            for code, n in rows:
                for label in tag_names(str(code), names):
                    counts[label] += int(n)
        elif name == "open":
            for value, n in rows:
                counts["true" if value else "false"] += int(n)
        else:
            for value, n in rows:
                counts[str(value)] += int(n)
        found[name] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(limit, 0)]
    return found


def tag_names(classification_code: str, nodes: dict[str, str]) -> list[str]:
    """The names of the 项/目/细目 nodes above and at ``classification_code`` (the axis is not a tag)."""
    code = classification_code.strip()
    prefixes = [code[:3], code[:6]] + ([code] if len(code) > 6 else [])
    return list(dict.fromkeys(nodes[p] for p in prefixes if p in nodes and len(p) > 1))
