"""Reading a batch file's rows with a bound on each row's size, holding no more than that.

A JSONL row is one line; a CSV row is one record, which a quoted field may spread over several
lines. Either is read with ``readline(limit + 1)``, so an over-long row is never held: it is read
on to its end in pieces, counted and dropped, and comes out as :class:`Oversized` with its size.
CSV records are found by following the quotes (:class:`_Quotes`, the states of Python's ``csv``
reader), so a quote that is never closed is found where it opened (:class:`Unclosed`) instead of
swallowing the rest of the file unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

DEFAULT_MAX_ROW_BYTES = 4 * 1024 * 1024
"""The largest row ``fanfold run`` reads unless told otherwise (``--max-row-bytes``)."""

_PIECE = 1 << 20  # how much of an over-long row is read at a time while skipping it


@dataclass(frozen=True, slots=True)
class Oversized:
    """A row over the limit, read to its end and dropped: its size in bytes."""

    size: int


@dataclass(frozen=True, slots=True)
class Unclosed:
    """A CSV record whose quote, opened on ``opened``, is still open where the file ends."""

    opened: int
    last: int


def lines(
    f: BinaryIO, limit: int, scan: Callable[[int, bytes], None] | None = None, number: int = 0
) -> Iterator[tuple[int, bytes | Oversized]]:
    """Each line of ``f`` (without its newline) and its number, or :class:`Oversized` for a line
    over ``limit`` bytes, which is skipped to its end without being held. ``scan(number, piece)``
    sees every byte read, skipped pieces too (the CSV reader follows quotes with it). Lines are
    numbered from ``number + 1``."""
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        number += 1
        if raw.endswith(b"\n") or len(raw) <= limit:
            content = raw[:-1] if raw.endswith(b"\n") else raw
            if scan is not None:
                scan(number, content)
            yield number, content
            continue
        size = len(raw)
        if scan is not None:
            scan(number, raw)
        while True:
            more = f.readline(_PIECE)
            ended = more.endswith(b"\n")
            piece = more[:-1] if ended else more
            size += len(piece)
            if scan is not None and piece:
                scan(number, piece)
            if ended or not more:
                break
        yield number, Oversized(size)


_START, _UNQUOTED, _QUOTED, _QUOTE_IN_QUOTED = range(4)


class _Quotes:
    """Follows the quotes of CSV text fed in pieces, as Python's ``csv`` reader does (a quote
    opens a field only at the field's start; ``""`` inside one is a literal quote), to tell
    whether a line's end ends the record."""

    def __init__(self, delimiter: str, quote: str = '"') -> None:
        self.delimiter = ord(delimiter)
        self.quote = ord(quote)
        self.state = _START
        self.opened = 0  # the line where the open quote opened

    def feed(self, number: int, piece: bytes) -> None:
        q, d = self.quote, self.delimiter
        pos, end = 0, len(piece)
        while pos < end:
            state = self.state
            if state == _QUOTED:
                found = piece.find(q, pos)
                if found < 0:
                    return
                self.state, pos = _QUOTE_IN_QUOTED, found + 1
            elif state == _QUOTE_IN_QUOTED:
                if piece[pos] == q:  # "" : a literal quote; the field goes on
                    self.state, pos = _QUOTED, pos + 1
                else:
                    self.state = _UNQUOTED
            elif state == _START and piece[pos] == q:
                self.state, self.opened, pos = _QUOTED, number, pos + 1
            else:
                found = piece.find(d, pos)
                if found < 0:
                    self.state = _UNQUOTED
                    return
                self.state, pos = _START, found + 1

    def end_line(self) -> bool:
        """A line ended: True if that ends the record (no quoted field is open)."""
        if self.state == _QUOTED:
            return False
        self.state = _START
        return True


def records(f: BinaryIO, limit: int, delimiter: str) -> Iterator[tuple[int, bytes | Oversized | Unclosed]]:
    """Each CSV record of ``f`` (its lines joined by ``\\n``) and its first line's number; a
    record over ``limit`` bytes as :class:`Oversized` (not held).

    A quote still open at the end of the file comes as :class:`Unclosed`, and reading goes on
    from the line after the one where it opened, so the rows after a stray quote are not lost
    (``f`` must be seekable)."""
    number = after = 0
    while True:
        quotes = _Quotes(delimiter)
        held: list[bytes] = []
        first: int | None = None
        size = 0
        over = False
        again: tuple[int, int] | None = None  # (offset, line number) just after the open quote's line
        for number, line in lines(f, limit, quotes.feed, after):
            if first is None:
                first = number
            size += line.size + 1 if isinstance(line, Oversized) else len(line) + 1
            if isinstance(line, Oversized) or size - 1 > limit:
                over = True
                held.clear()
            elif not over:
                held.append(line)
            if not quotes.end_line():
                if quotes.opened == number:
                    again = (f.tell(), number)
                continue
            yield first, Oversized(size - 1) if over else b"\n".join(held)
            held, first, size, over = [], None, 0, False
        if first is None or again is None:
            return
        yield first, Unclosed(quotes.opened, number)
        offset, after = again
        f.seek(offset)


def oversized_problem(size: int, limit: int) -> str:
    """Why an oversized row was not run, and the flag that lets it through."""
    return (
        f"the row is {size:,} bytes, over the limit of {limit:,} bytes per row; it was skipped without being read "
        f"into memory: raise the limit with --max-row-bytes {_round_up(size)} (or max_row_bytes: in the pipeline), "
        "or split the row"
    )


def unclosed_problem(found: Unclosed) -> str:
    return (
        f"a quote opened on line {found.opened} is never closed (the file ends inside it, at line {found.last}); "
        f"the lines after it are read as rows of their own: close the quoted field, or write a quote inside a "
        'field as two quotes ("")'
    )


def _round_up(size: int) -> int:
    """A limit above ``size``: the next whole MiB."""
    mib = 1 << 20
    return (size // mib + 1) * mib
