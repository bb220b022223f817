"""``govdata catalog search``: find catalog entries by keywords and filters."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli_catalog import catalog_app
from pipelines.cli_common import ActorOpt, HomeOpt, out, user_errors
from pipelines.errors import GovdataError

SECTION_LABELS = {"name": "名称", "abstract": "摘要", "items": "信息项", None: "-"}


def _status_label(status: str) -> str:
    from catalog.access import Status

    try:
        return Status(status).label
    except ValueError:
        return status


@catalog_app.command("search")
def catalog_search(
    query: Annotated[
        str, typer.Argument(help="Keywords: substrings of names, abstracts and data items (all must occur).")
    ] = "",
    department: Annotated[
        list[str] | None, typer.Option("--department", help="Provider: USCC or name (repeat for any of several).")
    ] = None,
    classification: Annotated[
        list[str] | None,
        typer.Option(
            "--classification",
            help="Axis (基础, 主题, 部门), classification code prefix (e.g. 101) or name (e.g. 人口).",
        ),
    ] = None,
    share_type: Annotated[
        list[str] | None, typer.Option("--share-type", help="无条件共享, 有条件共享, 不予共享 (or 授权共享, 非共享 …).")
    ] = None,
    update_cycle: Annotated[
        list[str] | None, typer.Option("--update-cycle", help="实时, 每日, 每周, 每月, 每季度, 半年, 每年, 其他.")
    ] = None,
    format_: Annotated[
        list[str] | None,
        typer.Option("--format", help="Format category (电子表格, 数据库 … or 1-7) or type (xlsx, MySQL …)."),
    ] = None,
    is_open: Annotated[
        bool | None, typer.Option("--open/--not-open", help="Only entries open (or not open) to the public.")
    ] = None,
    page: Annotated[int, typer.Option("--page", min=1, help="Page number, from 1.")] = 1,
    per_page: Annotated[int, typer.Option("--per-page", min=1, max=1000, help="Results per page.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    actor: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Search the catalog: keywords in Chinese or English (no word segmentation needed), filters, pages.

    Results rank a match in the name above one in the abstract above one in a data item. With
    --as USER, only what that user may see (other departments' entries once published).
    """
    from catalog.access import viewer_for
    from catalog.search import MAX_START, Filters, search
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    start = (page - 1) * per_page
    with user_errors():
        if start > MAX_START:
            raise GovdataError(f"page {page} is beyond the last page", hint="ask for a smaller --page")
        store = CatalogStore(Workspace.from_env(home).catalog_url)
        with store.session() as session:
            viewer = viewer_for(session, actor)
            found = search(
                session,
                query,
                Filters(
                    department=department or [],
                    classification=classification or [],
                    share_type=share_type or [],
                    update_cycle=update_cycle or [],
                    format=format_ or [],
                    open=is_open,
                ),
                viewer=viewer,
                start=start,
                rows=per_page,
            )
    pages = max(1, -(-found.total // per_page))
    if as_json:
        document = {
            "query": query,
            "terms": found.terms,
            "total": found.total,
            "page": page,
            "per_page": per_page,
            "pages": pages,
            "results": [
                {
                    "rank": start + i,
                    "id": h.id,
                    "name": h.name,
                    "resource_code": h.resource_code,
                    "department": h.department,
                    "department_uscc": h.department_uscc,
                    "share_type": h.share_type,
                    "update_cycle": h.update_cycle,
                    "format_type": h.format_type,
                    "open_to_public": h.open_to_public,
                    "status": h.status,
                    "matched_in": h.section,
                    "score": h.score,
                }
                for i, h in enumerate(found.hits, start=1)
            ],
        }
        out.print_json(json.dumps(document, ensure_ascii=False))
        return
    if not found.total:
        out.print(f"no catalog entry matches {query!r}" if query else "no catalog entry matches these filters")
        return
    if not found.hits:
        out.print(f"page {page} is past the end: {found.total} result(s) on {pages} page(s)", highlight=False)
        return
    table = Table(title=f"政务数据资源目录 · {query or '全部'}")
    table.add_column("#", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=8)
    table.add_column("provider", overflow="fold", min_width=8)
    table.add_column("share type", overflow="fold")
    table.add_column("update", overflow="fold")
    table.add_column("matched in", overflow="fold")
    table.add_column("status", overflow="fold")
    for i, h in enumerate(found.hits, start=start + 1):
        table.add_row(
            str(i),
            h.id,
            h.name,
            h.department,
            h.share_type,
            h.update_cycle,
            SECTION_LABELS.get(h.section, "-"),
            _status_label(h.status),
        )
    out.print(table)
    out.print(
        f"{found.total} result(s); page {page} of {pages}" + (f" (--page {page + 1} for more)" if page < pages else ""),
        highlight=False,
    )
