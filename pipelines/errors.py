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


#: OS errors that say the network or a peer failed, not that the input is wrong.
_TRANSIENT_OS = (ConnectionError, TimeoutError, BrokenPipeError, InterruptedError, BlockingIOError)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same work may succeed: what schedulers retry, and nothing else.

    govdata's own errors say so themselves (:class:`TransientError`); a dropped connection, a
    timeout or a busy database (SQLAlchemy's operational errors, judged as the database delivery
    judges them) may pass. Everything else (a wrong spec, a bad file, a bug) fails the same way
    again, so retrying it only delays the alert.
    """
    if isinstance(exc, GovdataError):
        return exc.retryable
    if isinstance(exc, _TRANSIENT_OS):
        return True
    if type(exc).__module__.startswith("sqlalchemy"):
        from exchange.delivery_db import is_transient as database_transient

        return database_transient(exc)
    return False
