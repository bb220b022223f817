"""``govdata exchange …`` commands of the exchange's monitor part (being built)."""

from __future__ import annotations

from pipelines.cli_exchange import exchange_app  # noqa: F401
