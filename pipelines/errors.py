"""The error taxonomy: one root, split by what the caller should do next."""

from __future__ import annotations


class GovdataError(Exception):
    """Root of every error govdata raises on purpose.

    ``hint`` tells the user what to do; the CLI prints ``message`` and ``hint`` and exits 1
    without a traceback.
    """

    retryable = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


class TerminalError(GovdataError):
    """A problem that retrying will not fix (bad spec, bad file, schema drift)."""


class TransientError(GovdataError):
    """A problem that may go away on retry (a database not reachable, a lock held)."""

    retryable = True


class SpecError(TerminalError):
    """The dataset spec is wrong: names the file, line and key."""


class SourceError(TerminalError):
    """The source cannot be read as declared: names the file, row or field."""


class SchemaDriftError(SourceError):
    """A column the spec requires is missing from the source."""


class QualityGateHeld(TerminalError):
    """The quality gate held the dataset: nothing was published (exit code 2)."""

    def __init__(self, message: str, *, report: object | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report
