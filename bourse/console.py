"""What the command line says: progress on stdout, problems on stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def say(message: str = "") -> None:
    """One line for the operator on standard output."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    """One line on standard error (also used for progress when stdout carries data)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """``rows`` laid out in left-aligned columns under ``header``."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
