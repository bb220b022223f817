"""Source connectors behind one protocol, loaded lazily by name."""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connectors.base import CollectResult, Connector, ConnectorOptions
from pipelines.errors import SpecError

# name -> "module:Class". Modules are imported only when a spec uses them.
REGISTRY: dict[str, str] = {
    "csv": "connectors.csv:CsvConnector",
    "xlsx": "connectors.xlsx:XlsxConnector",
    "sql": "connectors.sql:SqlConnector",
    "parquet": "connectors.parquet:ParquetConnector",
}

__all__ = ["REGISTRY", "CollectResult", "Connector", "ConnectorOptions", "connector_class", "make_connector"]


def connector_class(name: str) -> type[Connector]:
    """The connector class registered under ``name``."""
    target = REGISTRY.get(name)
    if target is None:
        match = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f"did you mean {match[0]!r}? " if match else ""
        raise SpecError(f"unknown connector {name!r}", hint=f"{hint}registered connectors: {', '.join(REGISTRY)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def make_connector(
    name: str,
    options: Mapping[str, Any],
    *,
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    where: str = "source",
) -> Connector:
    """Validate ``options`` against the connector's model and build the connector."""
    cls = connector_class(name)
    try:
        opts = cls.Options.model_validate(dict(options))
    except ValidationError as exc:
        valid = sorted(f.alias or n for n, f in cls.Options.model_fields.items())
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                match = difflib.get_close_matches(str(err["loc"][-1]), valid, n=1)
                near = f" (did you mean {match[0]!r}?)" if match else ""
                problems.append(f"unknown option {key!r}{near}; valid options: {', '.join(valid)}")
            else:
                problems.append(f"{key}: {str(err['msg']).removeprefix('Value error, ')}")
        raise SpecError(
            f"{where}: {len(problems)} problem(s) in the {name} connector options:\n"
            + "\n".join(f"  - {p}" for p in problems),
            hint=f"see CONTRIBUTING.md or `connectors/{name}.py` for the {name} options",
        ) from None
    return cls(opts, base_dir=base_dir, env=dict(os.environ if env is None else env))
