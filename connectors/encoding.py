"""Detect a text file's encoding and transcode it to UTF-8 in a streaming pass, counting what is undecodable.

Department exports are UTF-8 (with or without a BOM) or GB18030/GBK. DuckDB reads only UTF-8,
and silently returns nothing for GB18030 when errors are ignored (DOMAIN.md, "Encodings"), so
every file source is transcoded here first: in chunks (never the whole file in memory), with
the sha256 of the original bytes, and with every undecodable byte replaced by U+FFFD, counted
and located (byte offset and line), so that the records holding one can be rejected instead of
landing as mojibake.

GBK and GB2312 are decoded as GB18030: GB18030 is a superset of both (their two-byte codes map
identically), and Python's ``gbk`` codec fails on the four-byte GB18030 sequences modern exports
use for characters outside GBK (rare surnames, CJK extension B). Decoding with the superset
never loses a character a GBK file can contain.
"""

from __future__ import annotations

import codecs
import contextvars
import hashlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines import background
from pipelines.errors import SourceError

log = logging.getLogger(__name__)

Declared = Literal["auto", "utf-8", "utf-8-sig", "gb18030", "gbk", "gb2312"]

#: Declared names decoded with another codec (see the module docstring for why).
ALIASES: dict[str, str] = {"gbk": "gb18030", "gb2312": "gb18030", "utf-8-sig": "utf-8"}

UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

#: Bytes read per chunk while transcoding. Memory stays at a few times this, whatever the file size.
CHUNK_SIZE = 16 * 1024 * 1024
#: Bytes looked at to detect the encoding.
SAMPLE_SIZE = 1024 * 1024
#: Files at least this large are transcoded in a child process while this process has other
#: Python work under way (:func:`pipelines.background.busy`), so that both use a core.
PROCESS_MIN_BYTES = 64 * 1024 * 1024
#: Set to ``0`` to always transcode in-process.
PROCESS_ENV = "GOVDATA_TRANSCODE_PROCESS"
#: How many undecodable byte sequences are located (offset, line) for messages and details.
MAX_LOCATED = 20

_ERROR_HANDLER = "govdata-count-undecodable"


@dataclass(frozen=True)
class Detection:
    """The encoding chosen for a file, and why."""

    #: Python codec used to decode (``utf-8`` or ``gb18030``); a BOM is stripped separately.
    codec: str
    #: The file starts with a UTF-8 byte order mark (it is skipped, never landed).
    bom: bool
    #: How it was chosen, for the run report.
    reason: str
    #: The sample was pure ASCII, so UTF-8 is provisional: if a later chunk is not UTF-8 but is
    #: valid in this codec while everything before it was ASCII, transcoding restarts with it
    #: (``auto``) or fails naming it (a declared encoding).
    fallback: str | None = None
    #: The encoding was detected (``auto``), not declared.
    auto: bool = False


@dataclass(frozen=True)
class BadBytes:
    """One located undecodable byte sequence."""

    offset: int  # 0-based byte offset in the source file
    line: int  # 1-based physical line
    hex: str

    def describe(self) -> str:
        return f"line {self.line}, byte offset {self.offset}: bytes {self.hex}"


@dataclass
class TranscodeStats:
    """What one transcoding pass saw."""

    codec: str
    bom: bool
    #: How the codec was chosen (the detection's reason).
    reason: str = ""
    source_bytes: int = 0
    sha256: str = ""
    undecodable_bytes: int = 0
    undecodable_sequences: int = 0
    located: list[BadBytes] = field(default_factory=list)
    #: Line breaks in the text (LF, CRLF and lone CR each count once).
    line_breaks: int = 0
    #: The text does not end with a line break (its last line is still a line).
    unterminated_last_line: bool = False
    #: U+FFFD characters in the text: one per undecodable sequence, plus any already in the file.
    replacement_chars: int = 0
    #: Both CRLF and lone LF line breaks occur (DuckDB's CSV reader cannot mix them outside quotes).
    mixed_line_endings: bool = False
    crlf: int = 0
    bare_lf: int = 0

    @property
    def lines(self) -> int:
        """Physical lines of the text."""
        return self.line_breaks + (1 if self.unterminated_last_line else 0)

    @property
    def undecodable_share(self) -> float:
        return self.undecodable_bytes / self.source_bytes if self.source_bytes else 0.0


class _Tracker:
    """Counts and locates the undecodable sequences of one transcoding pass (see ``_handler``)."""

    def __init__(self, stats: TranscodeStats, *, locate: bool = True) -> None:
        self.stats = stats
        self.locate = locate
        self.segment = b""
        self.segment_offset = 0
        self.lines_before = 0

    def record(self, exc: UnicodeDecodeError) -> None:
        stats = self.stats
        stats.undecodable_bytes += exc.end - exc.start
        stats.undecodable_sequences += 1
        if self.locate and len(stats.located) < MAX_LOCATED:
            line = self.lines_before + count_line_breaks(self.segment[: exc.start]) + 1
            stats.located.append(
                BadBytes(
                    offset=self.segment_offset + exc.start, line=line, hex=exc.object[exc.start : exc.end].hex(" ")
                )
            )


_CURRENT: contextvars.ContextVar[_Tracker | None] = contextvars.ContextVar("govdata_decode_tracker", default=None)


def _handler(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: substitute U+FFFD (one per undecodable sequence) and count it."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    tracker = _CURRENT.get()
    if tracker is not None:
        tracker.record(exc)
    return "\ufffd", exc.end


codecs.register_error(_ERROR_HANDLER, _handler)


def count_line_breaks(data: bytes | str) -> int:
    """Line breaks in ``data``: LF, CRLF and lone CR each count once (as CSV readers split lines)."""
    if isinstance(data, bytes):
        lf, cr = data.count(b"\n"), data.count(b"\r")
        return lf + cr - (data.count(b"\r\n") if cr else 0)
    lf, cr = data.count("\n"), data.count("\r")
    return lf + cr - (data.count("\r\n") if cr else 0)


def canonical_codec(declared: str) -> str:
    """The Python codec a declared encoding is decoded with."""
    return ALIASES.get(declared, declared)


def guess_encoding(sample: bytes) -> str | None:
    """charset-normalizer's guess for ``sample`` (only used to word error messages)."""
    from charset_normalizer import from_bytes  # local: only needed when something is wrong

    best = from_bytes(sample).best()
    return None if best is None else str(best.encoding)


def _strict_error(sample: bytes, codec: str) -> UnicodeDecodeError | None:
    """The first decoding error of ``sample`` (a prefix of the file), or None.

    An incremental decoder is used so that a multibyte character cut by the end of the sample
    is not an error.
    """
    decoder = codecs.getincrementaldecoder(codec)("strict")
    try:
        decoder.decode(sample, final=False)
    except UnicodeDecodeError as exc:
        return exc
    return None


def _bad_bytes(sample: bytes, codec: str) -> int:
    """Undecodable bytes in ``sample`` when decoded with ``codec`` (a cut last character is fine)."""
    stats = TranscodeStats(codec=codec, bom=False)
    token = _CURRENT.set(_Tracker(stats, locate=False))
    try:
        codecs.getincrementaldecoder(codec)(_ERROR_HANDLER).decode(sample, final=False)
    finally:
        _CURRENT.reset(token)
    return stats.undecodable_bytes


def _where(body: bytes, offset: int, skipped: int) -> str:
    """Where ``offset`` of ``body`` is, for messages; ``skipped`` bytes (a BOM) precede ``body`` in the file."""
    line = count_line_breaks(body[:offset]) + 1
    return f"line {line}, byte offset {offset + skipped}: bytes {body[offset : offset + 4].hex(' ')}"


def detect(path: Path, sample: bytes, declared: str, *, max_undecodable_share: float, option: str) -> Detection:
    """Choose the codec for a file from its first bytes; raise SourceError when ``declared`` is plainly wrong.

    ``option`` names the spec option for hints (e.g. ``source.options.encoding``).
    """
    if sample.startswith(_UTF16_BOMS):
        raise SourceError(
            f"{path}: the file is UTF-16 (it starts with a UTF-16 byte order mark), which is not supported",
            hint="export the file as UTF-8 or GB18030",
        )
    bom = sample.startswith(UTF8_BOM)
    body = sample[len(UTF8_BOM) :] if bom else sample
    if declared == "auto":
        if bom:
            return Detection("utf-8", True, "UTF-8 byte order mark", auto=True)
        utf8_error = _strict_error(body, "utf-8")
        if utf8_error is None:
            if body.isascii():
                return Detection("utf-8", False, "the first bytes are ASCII", fallback="gb18030", auto=True)
            return Detection("utf-8", False, "the first bytes are valid UTF-8", auto=True)
        if _strict_error(body, "gb18030") is None:
            return Detection("gb18030", False, "the first bytes are valid GB18030, not UTF-8", auto=True)
        bad_utf8, bad_gb = _bad_bytes(body, "utf-8"), _bad_bytes(body, "gb18030")
        codec, bad = ("utf-8", bad_utf8) if bad_utf8 <= bad_gb else ("gb18030", bad_gb)
        share = bad / len(body) if body else 0.0
        if share > max_undecodable_share:
            guess = guess_encoding(sample)
            raise SourceError(
                f"{path}: the encoding could not be detected: the first {len(body)} bytes are neither UTF-8 "
                f"({bad_utf8} undecodable bytes, first at {_where(body, utf8_error.start, 0)}) nor GB18030 "
                f"({bad_gb} undecodable bytes)" + (f"; charset-normalizer guesses {guess}" if guess else ""),
                hint=f"re-export the file as UTF-8 or GB18030, or set {option} if it is one of "
                "utf-8, utf-8-sig, gb18030, gbk, gb2312",
            )
        return Detection(codec, False, f"fewest undecodable bytes in the first {len(body)} bytes ({codec})", auto=True)

    codec = canonical_codec(declared)
    if codec == "utf-8":
        error = _strict_error(body, "utf-8")
        if error is not None and _strict_error(body, "gb18030") is None:
            raise SourceError(
                f"{path}: declared encoding {declared}, but the file is not UTF-8 (first undecodable byte at "
                f"{_where(body, error.start, len(sample) - len(body))}); it looks like GB18030",
                hint=f"set {option}: gb18030 (or auto)",
            )
        return Detection(
            "utf-8",
            bom,
            f"declared {declared}" + (" (byte order mark skipped)" if bom else ""),
            fallback="gb18030" if body.isascii() else None,
        )
    # GB18030 (also for gbk/gb2312): UTF-8 text often decodes as GB18030 without any error, as
    # mojibake, so refuse a file that is plainly UTF-8.
    if bom or (not body.isascii() and _strict_error(body, "utf-8") is None):
        why = "it starts with a UTF-8 byte order mark" if bom else "its first bytes are valid UTF-8 Chinese text"
        raise SourceError(
            f"{path}: declared encoding {declared}, but the file is UTF-8 ({why}); decoding it as {declared} "
            "would land garbled text",
            hint=f"set {option}: utf-8 (or auto)",
        )
    superset = " (decoded as gb18030, its superset)" if declared != "gb18030" else ""
    return Detection("gb18030", False, f"declared {declared}{superset}")


class _Restart(Exception):
    """Internal: UTF-8 was wrong after an ASCII prefix; the fallback codec fits the first non-ASCII chunk."""

    def __init__(self, first: BadBytes | None) -> None:
        super().__init__("restart")
        self.first = first


def transcode_to_utf8(
    src: Path,
    dst: Path,
    detection: Detection,
    *,
    max_undecodable_share: float,
    option: str,
    chunk_size: int | None = None,
) -> TranscodeStats:
    """Stream ``src`` into ``dst`` as UTF-8 (no BOM), with the sha256 of the source bytes.

    Undecodable bytes become U+FFFD and are counted. Raise SourceError as soon as the share of
    undecodable bytes must exceed ``max_undecodable_share`` (the share can only grow).

    A file of :data:`PROCESS_MIN_BYTES` or more is transcoded in a child process when this process
    has background work (see :mod:`pipelines.background`); the result and errors are the same.
    """
    if _in_child_process(src):
        try:
            context = multiprocessing.get_context("spawn")  # fork could inherit a held import lock
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                job = pool.submit(_transcode_to_utf8, src, dst, detection, max_undecodable_share, option, chunk_size)
                return job.result()
        except (BrokenProcessPool, OSError) as exc:
            log.warning("%s: transcoding in a child process failed (%s); transcoding in-process", src, exc)
    return _transcode_to_utf8(src, dst, detection, max_undecodable_share, option, chunk_size)


def _in_child_process(src: Path) -> bool:
    if os.environ.get(PROCESS_ENV, "1") == "0" or multiprocessing.current_process().daemon:
        return False  # disabled, or a daemonic process (which may not start children)
    try:
        big = src.stat().st_size >= PROCESS_MIN_BYTES
    except OSError:
        return False
    return big and background.busy()


def _transcode_to_utf8(
    src: Path, dst: Path, detection: Detection, max_undecodable_share: float, option: str, chunk_size: int | None
) -> TranscodeStats:
    chunk_size = chunk_size or CHUNK_SIZE
    try:
        return _transcode(src, dst, detection, max_undecodable_share, option, chunk_size)
    except _Restart as restart:
        assert detection.fallback is not None
        where = restart.first.describe() if restart.first else "?"
        if not detection.auto:
            raise SourceError(
                f"{src}: declared encoding utf-8, but the file is not UTF-8 after its ASCII start (first "
                f"undecodable byte at {where}); it looks like {detection.fallback.upper()}",
                hint=f"set {option}: {detection.fallback} (or auto)",
            ) from None
        retry = Detection(
            detection.fallback,
            detection.bom,
            f"{detection.reason}; later bytes are {detection.fallback}, not UTF-8 (first at {where})",
            auto=True,
        )
        log.info("%s: the ASCII start looked like UTF-8, later bytes are %s; transcoding again", src, retry.codec)
        return _transcode(src, dst, retry, max_undecodable_share, option, chunk_size)


def _transcode(
    src: Path, dst: Path, detection: Detection, max_share: float, option: str, chunk_size: int
) -> TranscodeStats:
    stats = TranscodeStats(codec=detection.codec, bom=detection.bom, reason=detection.reason)
    size = src.stat().st_size
    budget = max_share * size  # more undecodable bytes than this: fail now, the share can only grow
    digest = hashlib.sha256()
    tracker = _Tracker(stats)
    decode: Callable[[bytes, str], tuple[str, int]] = codecs.getdecoder(detection.codec)  # type: ignore[assignment]
    all_ascii = True
    pending = b""
    offset = 0  # source offset of ``pending[0]``
    prev_ended_cr = False
    last_char = ""
    with src.open("rb") as fin, dst.open("wb") as fout:
        first = True
        while True:
            chunk = fin.read(chunk_size)
            digest.update(chunk)
            if first:
                first = False
                if detection.bom and chunk.startswith(UTF8_BOM):
                    chunk = chunk[len(UTF8_BOM) :]
                    offset = len(UTF8_BOM)
            data = pending + chunk if pending else chunk
            if not data:
                break
            if chunk:
                # Cut after the last line break: LF and CR are never part of a multibyte character
                # in UTF-8 or GB18030, so the segment ends on a character boundary.
                cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
                if cut == 0:
                    pending = data
                    continue
                segment, pending = data[:cut], data[cut:]
            else:
                segment, pending = data, b""
            tracker.segment, tracker.segment_offset, tracker.lines_before = segment, offset, stats.line_breaks
            before = stats.undecodable_sequences
            token = _CURRENT.set(tracker)
            try:
                text, _ = decode(segment, _ERROR_HANDLER)
            finally:
                _CURRENT.reset(token)
            if (
                stats.undecodable_sequences > before
                and all_ascii
                and detection.fallback
                and _strict_error(segment, detection.fallback) is None
            ):
                raise _Restart(stats.located[before] if len(stats.located) > before else None)
            all_ascii = all_ascii and segment.isascii()
            if stats.undecodable_bytes > budget:
                _too_many(src, stats, detection, max_share, option, size, segment)
            _count_text(stats, text, prev_ended_cr)
            prev_ended_cr = text.endswith("\r")
            last_char = text[-1:] or last_char
            fout.write(text.encode("utf-8"))
            offset += len(segment)
    stats.source_bytes = size
    stats.sha256 = digest.hexdigest()
    stats.unterminated_last_line = last_char not in ("", "\n", "\r")
    stats.mixed_line_endings = stats.crlf > 0 and stats.bare_lf > 0
    if stats.undecodable_bytes:
        first_bad = stats.located[0].describe() if stats.located else "?"
        log.warning(
            "%s: %d undecodable bytes (%.3f%%) as %s, first at %s",
            src,
            stats.undecodable_bytes,
            100 * stats.undecodable_share,
            detection.codec,
            first_bad,
        )
    return stats


def _count_text(stats: TranscodeStats, text: str, prev_ended_cr: bool) -> None:
    lf = text.count("\n")
    cr = text.count("\r") if "\r" in text else 0
    crlf = text.count("\r\n") if cr else 0
    straddle = 1 if prev_ended_cr and text.startswith("\n") else 0  # a CRLF cut between two segments
    stats.line_breaks += lf + cr - crlf - straddle
    stats.crlf += crlf + straddle
    stats.bare_lf += lf - crlf - straddle
    if "\ufffd" in text:
        stats.replacement_chars += text.count("\ufffd")


def blank_lines_upper_bound(path: Path) -> int:
    """An upper bound of the empty lines of a UTF-8 text file (inside quoted values too).

    A run of k line breaks holds k-1 empty lines and at least k//2 non-overlapping pairs, so
    twice the pair count (plus the chunk seams) bounds it. Only needed when lines are missing
    from a parse, so it is a separate pass instead of a cost on every transcoding.
    """
    bound = 1
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            joined = tail + chunk[:2]
            pairs = chunk.count(b"\n\n") + joined.count(b"\n\n")
            if b"\r" in chunk or b"\r" in joined:
                pairs += chunk.count(b"\r\r") + chunk.count(b"\n\r\n") + joined.count(b"\r\r") + joined.count(b"\n\r\n")
            bound += 2 * pairs + 1
            tail = chunk[-2:]
    return bound


def _too_many(
    src: Path,
    stats: TranscodeStats,
    detection: Detection,
    max_share: float,
    option: str,
    size: int,
    segment: bytes,
) -> None:
    first = stats.located[0].describe() if stats.located else "?"
    guess = guess_encoding(segment[:SAMPLE_SIZE])
    seems = f"; it looks like {guess}" if guess and guess.replace("_", "-") != detection.codec else ""
    raise SourceError(
        f"{src}: more than {max_share:.1%} of the file's {size} bytes cannot be decoded as {detection.codec} "
        f"({stats.undecodable_bytes} bytes so far, first at {first}){seems}",
        hint=f"set {option} to the file's real encoding (auto, utf-8, utf-8-sig, gb18030), or re-export it; "
        "a file with a few damaged bytes can be landed by raising source.options.max_undecodable_share",
    )
