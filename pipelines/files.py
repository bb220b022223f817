"""File helpers shared by the connectors, the runner and the exchange store."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """The sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_path(base_dir: Path, path: str | Path) -> Path:
    """``path`` as given, or relative to ``base_dir`` (the spec's folder) when not absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p
