"""Dataset specs: one YAML file per dataset, loaded into closed pydantic models.

Errors name the file, the line and the key, and suggest the nearest valid key.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib.util
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.errors import SpecError
from pipelines.identifiers import is_valid_uscc, uscc_problem

_IDENT = r"^[a-z][a-z0-9_]*$"
# libyaml's loader is ~10x faster (DAG parsing loads every spec) and keeps line numbers.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- the 13 core elements' value lists (DOMAIN.md) ---------------------------------------------


class ShareType(StrEnum):
    """共享类型. Shanghai's 2018 names (授权共享, 非共享) are accepted as aliases."""

    UNCONDITIONAL = "无条件共享"
    CONDITIONAL = "有条件共享"
    NOT_SHARED = "不予共享"


SHARE_TYPE_ALIASES = {
    "无条件共享": ShareType.UNCONDITIONAL,
    "unconditional": ShareType.UNCONDITIONAL,
    "有条件共享": ShareType.CONDITIONAL,
    "授权共享": ShareType.CONDITIONAL,
    "conditional": ShareType.CONDITIONAL,
    "不予共享": ShareType.NOT_SHARED,
    "非共享": ShareType.NOT_SHARED,
    "not_shared": ShareType.NOT_SHARED,
}


class UpdateCycle(StrEnum):
    """更新周期."""

    REALTIME = "实时"
    DAILY = "每日"
    WEEKLY = "每周"
    MONTHLY = "每月"
    QUARTERLY = "每季度"
    HALF_YEARLY = "半年"
    YEARLY = "每年"
    OTHER = "其他"


class ShareMethod(StrEnum):
    """共享方式."""

    DATABASE = "数据库"
    FILE = "文件"
    API = "接口"


class FormatCategory(StrEnum):
    """信息资源格式分类."""

    DOCUMENT = "电子文件"
    SPREADSHEET = "电子表格"
    DATABASE = "数据库"
    IMAGE = "图形图像"
    STREAMING = "流媒体"
    SELF_DESCRIBING = "自描述格式"
    SERVICE = "服务接口"


class ClassificationAxis(StrEnum):
    """The three classification axes of the catalog."""

    BASE = "基础"
    THEME = "主题"
    DEPARTMENT = "部门"


#: The masking rules of :class:`pipelines.masking.MaskRule` (kept here: masking imports the spec).
MaskingRuleName = Literal["name", "mobile", "resident_id", "address", "partial", "redact", "hash"]

ColumnType = Literal["string", "text", "integer", "float", "decimal", "money", "boolean", "date", "timestamp"]

#: Catalog data-type code (信息项数据类型) for each column type.
DATA_TYPE_CODES: dict[str, str] = {
    "string": "C",
    "text": "M",
    "integer": "I",
    "float": "B",
    "decimal": "N",
    "money": "Y",
    "boolean": "L",
    "date": "D",
    "timestamp": "T",
}

#: DuckDB type each column type is staged as.
DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "text": "VARCHAR",
    "integer": "BIGINT",
    "float": "DOUBLE",
    "decimal": "DECIMAL(18,4)",
    "money": "DECIMAL(18,2)",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


# --- the spec ----------------------------------------------------------------------------------


class Department(_Closed):
    """The providing department (信息资源提供方)."""

    name: str = Field(min_length=2, description="Department name, e.g. 上海市市场监督管理局.")
    uscc: str = Field(description="The department's 统一社会信用代码, checksum-validated (提供方代码).")
    region: str | None = Field(
        default=None, pattern=r"^\d{6}$", description="GB/T 2260 code of the department's region, e.g. 310000."
    )
    level: Literal["市", "区"] = Field(default="市", description="Government level: 市 (city) or 区 (district).")

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        value = value.strip().upper()
        if not is_valid_uscc(value):
            raise ValueError(f"{value!r} is not a valid USCC: {uscc_problem(value)}")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from pipelines.divisions import current_table

        if value not in current_table():
            raise ValueError(
                f"{value!r} is not a current GB/T 2260 division code (e.g. 310000 上海市, 310115 浦东新区)"
            )
        return value


class Source(_Closed):
    """Where the data is collected from. Options are checked by the connector's own model."""

    connector: str = Field(description="Registered connector name: csv, xlsx, sql, parquet.")
    options: dict[str, Any] = Field(default_factory=dict, description="Connector options (see connectors/).")


class Column(_Closed):
    """One column (信息项) of the dataset."""

    name: str = Field(pattern=_IDENT, description="Column name in the published data (snake_case).")
    title: str = Field(min_length=1, description="Chinese name of the data item (信息项名称).")
    source: str | None = Field(default=None, description="Column name in the source; defaults to `name`.")
    type: ColumnType = Field(default="string", description="Logical type; cast failures are quarantined.")
    length: int | None = Field(default=None, gt=0, description="Declared length (数据长度).")
    primary_key: bool = Field(default=False, description="Part of the primary key (de-duplication, delivery).")
    nullable: bool = Field(default=True, description="Whether an empty value is allowed.")
    sensitive: bool = Field(default=False, description="Personal or sensitive data: masked outside the gate.")
    description: str | None = Field(default=None, description="Free text about the data item.")
    sensitive_level: Literal["L1", "L2", "L3", "L4"] | None = Field(
        default=None, description="Sensitivity level of a sensitive item (L1 lowest … L4 highest)."
    )
    share_type: ShareType | None = Field(
        default=None, description="Item-level share type when narrower than the resource's (e.g. 不予共享)."
    )
    masking: MaskingRuleName | None = Field(
        default=None, description="Masking rule at delivery and in reports: name, mobile, resident_id, address, …"
    )
    code_set: str | None = Field(
        default=None, description="The code set (代码集) the values come from, e.g. GB/T 2261.1."
    )

    @field_validator("share_type", mode="before")
    @classmethod
    def _share_alias(cls, value: object) -> object:
        return SHARE_TYPE_ALIASES.get(value, value) if isinstance(value, str) else value

    @property
    def source_name(self) -> str:
        return self.source or self.name

    @property
    def type_code(self) -> str:
        return DATA_TYPE_CODES[self.type]


class CodeMap(_Closed):
    """Map source codes or labels to a standard dictionary."""

    column: str = Field(description="Column to map.")
    mapping: dict[str, str] | None = Field(default=None, description="Inline source value → standard code.")
    file: str | None = Field(default=None, description="CSV (UTF-8, two columns: source,code) relative to the spec.")
    unmapped: Literal["keep", "null", "quarantine"] = Field(
        default="keep", description="What happens to a value not in the dictionary."
    )

    @model_validator(mode="after")
    def _one_source(self) -> CodeMap:
        if (self.mapping is None) == (self.file is None):
            raise ValueError("give exactly one of `mapping` or `file`")
        return self


class FilterRule(_Closed):
    """Rows matching ``where`` are removed and counted under ``name``."""

    name: str = Field(pattern=_IDENT, description="Rule name used in the row accounting.")
    where: str = Field(min_length=1, description="DuckDB SQL condition over the cleansed columns.")
    reason: str | None = Field(default=None, description="Why such rows are removed (for the report).")


class Dedupe(_Closed):
    """De-duplication by primary key."""

    keep: Literal["first", "latest"] = Field(default="first", description="Which duplicate to keep.")
    order_by: str | None = Field(default=None, description="Column deciding `latest` (largest wins).")

    @model_validator(mode="after")
    def _order(self) -> Dedupe:
        if self.keep == "latest" and not self.order_by:
            raise ValueError("`keep: latest` needs `order_by`, the column that says which row is newer")
        return self


DEFAULT_NULL_TOKENS = ("", "NULL", "null", "Null", "NaN", "None", "无", "-", "--", "/", "—")


class Cleanse(_Closed):
    """Cleansing rules, run as DuckDB SQL."""

    trim: bool = Field(default=True, description="Strip leading and trailing white space (also full-width).")
    halfwidth: bool = Field(default=True, description="Full-width ASCII (ＡＢＣ１２３) to half-width.")
    null_tokens: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NULL_TOKENS), description="Values that mean 'no value'."
    )
    resident_ids: list[str] = Field(
        default_factory=list, description="Resident-ID columns: x → X, 15-digit → 18-digit."
    )
    upper: list[str] = Field(default_factory=list, description="Columns to upper-case (codes such as USCC).")
    code_maps: list[CodeMap] = Field(default_factory=list, description="Dictionary mappings.")
    filters: list[FilterRule] = Field(default_factory=list, description="Named rules that remove rows.")
    dedupe: Dedupe = Field(default_factory=Dedupe, description="De-duplication by primary key.")


class Quality(_Closed):
    """The quality gate."""

    suite: str | None = Field(
        default=None, description="Suite JSON path relative to the spec; default expectations/<id>.json."
    )
    max_quarantine_share: float = Field(
        default=0.05, ge=0, le=1, description="Hold the dataset when more than this share is quarantined."
    )


class Classification(_Closed):
    """信息资源分类: axis plus the 类/项/目/细目 path."""

    axis: ClassificationAxis = Field(description="基础, 主题 or 部门.")
    path: list[str] = Field(
        min_length=1, max_length=3, description="项/目/细目 labels (the 类 is the axis: 1 基础, 2 主题, 3 部门)."
    )


class ResourceFormat(_Closed):
    """信息资源格式."""

    category: FormatCategory = Field(default=FormatCategory.DATABASE, description="Format category.")
    type: str = Field(default="Parquet", description="Format type, e.g. xlsx, MySQL, Parquet.")
    other: str | None = Field(default=None, description="其他类型资源格式描述.")


class Sharing(_Closed):
    """共享属性."""

    type: ShareType = Field(description="无条件共享, 有条件共享 or 不予共享 (aliases 授权共享, 非共享).")
    condition: str | None = Field(default=None, description="共享条件 (conditional) or legal basis (not shared).")
    method: ShareMethod = Field(default=ShareMethod.FILE, description="共享方式: 数据库, 文件 or 接口.")
    method_type: str | None = Field(default=None, description="共享方式类型, e.g. 库表交换, FTP, RESTful.")

    @field_validator("type", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        return SHARE_TYPE_ALIASES.get(str(value), value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _condition(self) -> Sharing:
        if self.type is not ShareType.UNCONDITIONAL and not (self.condition or "").strip():
            what = "共享条件" if self.type is ShareType.CONDITIONAL else "不予共享依据 (legal basis)"
            raise ValueError(f"share type {self.type.value} requires `condition` ({what})")
        return self


class OpenData(_Closed):
    """开放属性."""

    open: bool = Field(default=False, description="Open to the public.")
    condition: str | None = Field(default=None, description="开放条件.")
    theme: str | None = Field(default=None, description="开放主题分类.")


_RESOURCE_CODE = re.compile(r"^(\d)(\d{2})(\d{3})(\d*)/(\d+)$")

#: The 类 digit of a resource code for each classification axis (2017 national cataloguing guide).
AXIS_DIGITS: dict[ClassificationAxis, str] = {
    ClassificationAxis.BASE: "1",
    ClassificationAxis.THEME: "2",
    ClassificationAxis.DEPARTMENT: "3",
}


class CatalogMeta(_Closed):
    """The 13 core metadata elements not already given elsewhere in the spec.

    name (2) is the spec's ``name``, provider and its code (4, 5) are the ``department``, data
    items (8) are the ``columns``.
    """

    classification: Classification = Field(description="1 信息资源分类.")
    resource_code: str = Field(description="3 信息资源代码: 类1+项2+目3+细目 digits, '/', sequence number.")
    abstract: str = Field(min_length=1, description="6 信息资源摘要.")
    format: ResourceFormat = Field(default_factory=ResourceFormat, description="7 信息资源格式.")
    sharing: Sharing = Field(description="9 共享属性.")
    open: OpenData = Field(default_factory=OpenData, description="10 开放属性.")
    update_cycle: UpdateCycle = Field(description="11 更新周期.")
    publish_date: dt.date | None = Field(default=None, description="12 发布日期; default: first publication.")
    related_resources: list[str] = Field(default_factory=list, description="13 关联资源代码.")
    related_business: str | None = Field(default=None, description="关联业务事项.")
    sub_organisation: str | None = Field(default=None, description="下设机构 that holds the resource.")

    @field_validator("resource_code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not _RESOURCE_CODE.match(value):
            raise ValueError(
                f"{value!r} is not a resource code: expected classification digits (类 1 + 项 2 + 目 3 "
                "+ 细目), '/', a sequence number, e.g. 112461465423/798456"
            )
        return value

    @field_validator("related_resources")
    @classmethod
    def _related(cls, values: list[str]) -> list[str]:
        for value in values:
            cls._code(value)
        return values

    @model_validator(mode="after")
    def _axis_digit(self) -> CatalogMeta:
        digit = AXIS_DIGITS[self.classification.axis]
        if not self.resource_code.startswith(digit):
            raise ValueError(
                f"resource code {self.resource_code} starts with {self.resource_code[0]}, but its 类 digit must be "
                f"{digit} for the {self.classification.axis.value} axis (1 基础, 2 主题, 3 部门)"
            )
        return self


class Publish(_Closed):
    """Publish options."""

    enabled: bool = Field(default=True, description="Publish to the exchange after a passed gate.")
    mode: Literal["snapshot", "merge"] = Field(
        default="snapshot",
        description="snapshot: the run is the whole dataset; merge: upsert the run's rows into the last version "
        "(for incremental sources).",
    )


_CRON_FIELD = re.compile(r"^[0-9*,/A-Za-z?#-]+$")


class Schedule(_Closed):
    """When the dataset runs, if not as its 更新周期 says (see :mod:`pipelines.schedule`)."""

    cron: str | None = Field(
        default=None,
        description="Five-field cron of the period boundaries, e.g. '0 2 * * *' (a run covers one match to the next).",
    )
    interval_minutes: int | None = Field(
        default=None, ge=1, le=1440, description="A fixed interval in minutes instead (实时 defaults to 15)."
    )
    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone the periods are counted in.")
    start_date: dt.date | None = Field(default=None, description="The first period's start (default 2024-01-01).")
    catchup: bool = Field(default=False, description="Run every missed period since start_date (else only the latest).")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fields = value.split()
        if value.strip().startswith("@"):
            raise ValueError(
                f"{value!r}: write a five-field cron expression (presets like @daily come from catalog.update_cycle)"
            )
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError(f"{value!r} is not a five-field cron expression (minute hour day month weekday)")
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.cron is not None and self.interval_minutes is not None:
            raise ValueError("give schedule.cron or schedule.interval_minutes, not both")
        return self


class DatasetSpec(_Closed):
    """A dataset spec: what to collect, how to cleanse and check it, and how to catalog it."""

    id: str = Field(pattern=_IDENT, description="Dataset id, unique in the city (snake_case).")
    name: str = Field(min_length=1, description="2 信息资源名称.")
    department: Department = Field(description="The providing department.")
    source: Source = Field(description="Where the data comes from.")
    columns: list[Column] = Field(min_length=1, description="The data items, in order.")
    cleanse: Cleanse = Field(default_factory=Cleanse, description="Cleansing rules.")
    quality: Quality = Field(default_factory=Quality, description="Quality gate settings.")
    catalog: CatalogMeta = Field(description="Catalog metadata (the 13 core elements).")
    publish: Publish = Field(default_factory=Publish, description="Publish options.")
    schedule: Schedule = Field(default_factory=Schedule, description="Overrides of the schedule from update_cycle.")
    tags: list[str] = Field(default_factory=list, description="Free tags (also used as Airflow DAG tags).")

    # Set by the loader, not by the YAML.
    path: Path | None = Field(default=None, exclude=True, description="The spec file (set by the loader).")

    @model_validator(mode="after")
    def _columns(self) -> DatasetSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        refs: list[tuple[str, str]] = [("cleanse.resident_ids", c) for c in self.cleanse.resident_ids]
        refs += [("cleanse.upper", c) for c in self.cleanse.upper]
        refs += [("cleanse.code_maps.column", m.column) for m in self.cleanse.code_maps]
        if self.cleanse.dedupe.order_by:
            refs.append(("cleanse.dedupe.order_by", self.cleanse.dedupe.order_by))
        for where, name in refs:
            if name not in known:
                raise ValueError(f"{where} names column {name!r}, which is not declared{_nearest(name, known)}")
        if self.publish.mode == "merge" and not self.primary_key:
            raise ValueError("publish.mode merge needs a primary key (set primary_key: true on a column)")
        return self

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]

    @property
    def sensitive_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.sensitive]

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, relative: str | Path) -> Path:
        """A path named in the spec, relative to the spec's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def suite_path(self) -> Path:
        if self.quality.suite:
            return self.resolve(self.quality.suite)
        return suites_dir() / f"{self.id}.json"


def suites_dir() -> Path:
    """The ``expectations`` package folder, found without importing it (importing loads GX)."""
    found = importlib.util.find_spec("expectations")
    if found is None or found.origin is None:  # pragma: no cover - broken install
        raise SpecError("the expectations package is not installed", hint="run `make demo` or `uv sync`")
    return Path(found.origin).parent


# --- loading with file / line / key errors -----------------------------------------------------


def _nearest(name: str, candidates: set[str] | list[str]) -> str:
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the field at ``loc`` (to suggest its valid keys)."""
    model: Any = DatasetSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _describe(path: Path, node: yaml.Node | None, err: Any) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_of(node, loc)
    where = f"{path}:{line}" if line else str(path)
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = sorted(parent.model_fields) if parent else []
        valid = [v for v in valid if v != "path"]
        hint = _nearest(str(loc[-1]), valid) if valid else ""
        return f"{where}: unknown key {key!r}{hint}; valid keys here: {', '.join(valid)}"
    if err["type"] == "missing":
        return f"{where}: required key {key!r} is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {key}: {msg}"


def load_spec(path: str | Path) -> DatasetSpec:
    """Load and validate a dataset spec; raise :class:`SpecError` naming file, line and key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found", hint="give the path of a dataset YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})", hint="save the spec as UTF-8") from exc
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: invalid YAML: {problem}", hint="fix the YAML syntax at that line") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a mapping of keys (id, name, department, source, …)")
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as exc:
        # The node tree (for line numbers) only when there is something to point at: DAG parsing
        # loads every spec, and composing it costs as much again as loading it.
        node = yaml.compose(text, Loader=_Loader)
        problems = [_describe(path, node, e) for e in exc.errors()]
        raise SpecError(
            f"{path}: {len(problems)} problem(s) in the dataset spec:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="fix the keys named above; `govdata validate SPEC` checks a spec without running it",
        ) from None
    return spec.model_copy(update={"path": path.resolve()})


def find_specs(root: str | Path) -> list[Path]:
    """Every dataset spec (``*.yaml``/``*.yml`` with an ``id`` key) under ``root``, sorted."""
    root = Path(root)
    found = []
    for p in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        if p.name.startswith(".") or "dicts" in p.parts:
            continue
        found.append(p)
    return found
