"""Reading the logs of the servers the integration harnesses start."""

from __future__ import annotations

import subprocess
from pathlib import Path


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def process_status(process: subprocess.Popen[bytes] | None) -> str:
    """``not started``, ``running`` or ``exited N``: how a harness's server process stands."""
    if process is None:
        return "not started"
    code = process.poll()
    return "running" if code is None else f"exited {code}"
