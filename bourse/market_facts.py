"""``bourse market import-facts PATH``: SEC companyfacts JSON files (one, or a directory
of them such as the unpacked bulk ``companyfacts.zip``) into the market service's
fundamentals, as the market part (its database role), one transaction per company."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from bourse.parts import BY_NAME
from bourse.provision import part_database
from services.market.service import fundamentals
from shared.db import open_connection
from shared.errors import AppError


def files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.json") if p.is_file())
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    return [path]


async def import_facts(
    path: Path,
    *,
    admin_url: str,
    database: str,
    environ: Mapping[str, str],
    ticker: str | None,
    report: Callable[[str], None],
) -> tuple[int, int]:
    """Import every file of ``path``; (imported, skipped) files. A file the market cannot
    place (no security with its CIK, not a companyfacts document) is reported and skipped."""
    files = files_of(path)
    if ticker is not None and len(files) != 1:
        raise ValueError("--ticker names the security of a single file")
    target = part_database(BY_NAME["market"], admin_url, database=database, environ=environ)
    conn = await open_connection(target.dsn)
    imported = skipped = 0
    try:
        for file in files:
            try:
                doc: Any = orjson.loads(file.read_bytes())
            except orjson.JSONDecodeError:
                report(f"{file.name}: not JSON, skipped")
                skipped += 1
                continue
            try:
                async with conn.transaction():
                    summary = await fundamentals.import_company_facts(conn, doc, ticker=ticker)
            except AppError as exc:
                report(f"{file.name}: {exc}, skipped")
                skipped += 1
                continue
            imported += 1
            report(
                f"{file.name}: {summary['ticker']} {summary['facts']} facts"
                f" ({summary['written']} new or changed, {summary['malformed']} malformed)"
            )
    finally:
        await conn.close()
    return imported, skipped
