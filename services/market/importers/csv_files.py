"""OHLCV CSV files in the common layouts.

- Yahoo Finance download: ``Date,Open,High,Low,Close,Adj Close,Volume`` (one security; the
  ticker is given by the caller). Missing values are written ``null``. Yahoo's ``Close`` is
  already split-adjusted (``Adj Close`` also for dividends): import such files without
  splits for the same period, or the adjustment is applied twice. ``Adj Close`` is ignored.
- Stooq single-security download: ``Date,Open,High,Low,Close,Volume``.
- Stooq bulk (the ``data/daily/us`` text files):
  ``<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>`` with tickers
  such as ``AAPL.US`` or ``BRK-B.US`` and dates ``YYYYMMDD``; only ``<PER>`` ``D`` rows are read.

Parsing never fails on a bad row: a value that does not parse becomes NaN (rejected later as
``not_a_number``) and a line with the wrong number of columns is reported as ``malformed``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Layout = Literal["yahoo", "stooq", "stooq_bulk"]


class CsvLayoutError(ValueError):
    """The header matches no layout we know."""


@dataclass
class ParsedFile:
    layout: Layout
    lines: list[int] = field(default_factory=list)
    tickers: list[str] = field(default_factory=list)
    days: list[date | None] = field(default_factory=list)
    raw_days: list[str] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line, raw text)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value


def _day(text: str) -> date | None:
    text = text.strip()
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def detect(header: list[str]) -> Layout:
    names = [h.strip().lower() for h in header]
    if names and names[0] == "<ticker>":
        return "stooq_bulk"
    if names[:5] == ["date", "open", "high", "low", "close"]:
        return "yahoo" if "adj close" in names else "stooq"
    raise CsvLayoutError(f"unrecognised CSV header: {','.join(header)[:200]}")


def parse(text: str, *, ticker: str | None = None, layout: str = "auto") -> ParsedFile:
    """Rows of ``text``; ``ticker`` names the security of a single-security file."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvLayoutError("the file is empty") from None
    found = detect(header)
    if layout != "auto" and not (layout == found or (layout == "stooq" and found == "stooq_bulk")):
        raise CsvLayoutError(f"the header is a {found} layout, not {layout}")
    parsed = ParsedFile(found)
    names = [h.strip().lower() for h in header]
    if found == "stooq_bulk":
        col = {name: names.index(name) for name in names}
        width = len(names)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != width:
                parsed.malformed.append((line, ",".join(row)[:200]))
                continue
            if row[col["<per>"]].strip().upper() != "D":
                continue
            symbol = row[col["<ticker>"]].strip().upper()
            if symbol.endswith(".US"):
                symbol = symbol[:-3]
            _append(
                parsed,
                line,
                symbol,
                row[col["<date>"]],
                [row[col[k]] for k in ("<open>", "<high>", "<low>", "<close>", "<vol>")],
            )
        return parsed
    if ticker is None:
        raise CsvLayoutError("a single-security file needs the ticker parameter")
    volume_col = names.index("volume")
    width = len(names)
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != width:
            parsed.malformed.append((line, ",".join(row)[:200]))
            continue
        _append(parsed, line, ticker.upper(), row[0], [*row[1:5], row[volume_col]])
    return parsed


def _append(parsed: ParsedFile, line: int, ticker: str, day: str, values: list[str]) -> None:
    o, h, lo, c, v = (_number(x.strip()) for x in values)
    parsed.lines.append(line)
    parsed.tickers.append(ticker)
    parsed.raw_days.append(day.strip())
    parsed.days.append(_day(day))
    parsed.open.append(o)
    parsed.high.append(h)
    parsed.low.append(lo)
    parsed.close.append(c)
    parsed.volume.append(v)
