"""The SEC's companyfacts JSON (``https://data.sec.gov/api/xbrl/companyfacts/CIK##########.json``,
one company, or every company in the bulk ``companyfacts.zip``):
``{"cik", "entityName", "facts": {"us-gaap"|"dei": {<Concept>: {"units": {<unit>: [{"start"?,
"end", "val", "fy", "fp", "form", "filed", "frame"?, "accn"}...]}}}}}``.

Each metric is read from the first of its concepts that reports a period (companies moved
from ``Revenues``/``SalesRevenueNet`` to ``RevenueFromContractWithCustomer...`` in 2018):
a later concept fills only periods an earlier one left empty. Only the periodic reports'
forms count (10-K, 10-Q and their amendments). An entry without a parseable ``end``,
``filed`` or numeric ``val`` is malformed: counted, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.market.domain.fundamentals import Fact

# metric → (taxonomy, concept, unit) in order of preference.
CONCEPTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "revenue": (
        ("us-gaap", "Revenues", "USD"),
        ("us-gaap", "RevenueFromContractWithCustomerExcludingAssessedTax", "USD"),
        ("us-gaap", "SalesRevenueNet", "USD"),
    ),
    "net_income": (("us-gaap", "NetIncomeLoss", "USD"),),
    "eps": (
        ("us-gaap", "EarningsPerShareDiluted", "USD/shares"),
        ("us-gaap", "EarningsPerShareBasic", "USD/shares"),
    ),
    "shares_outstanding": (
        ("dei", "EntityCommonStockSharesOutstanding", "shares"),
        ("us-gaap", "CommonStockSharesOutstanding", "shares"),
    ),
    "dividends_per_share": (("us-gaap", "CommonStockDividendsPerShareDeclared", "USD/shares"),),
    "total_debt": (("us-gaap", "LongTermDebt", "USD"),),
    "equity": (("us-gaap", "StockholdersEquity", "USD"),),
}
# Total debt where a filer reports no LongTermDebt: the non-current part plus the current.
DEBT_PARTS = (("us-gaap", "LongTermDebtNoncurrent"), ("us-gaap", "LongTermDebtCurrent"))
FORMS = frozenset({"10-K", "10-Q", "10-K/A", "10-Q/A"})


class CompanyFactsError(ValueError):
    """Not a companyfacts document."""


@dataclass
class ParsedFacts:
    cik: int | None
    entity_name: str | None
    facts: list[Fact] = field(default_factory=list)
    malformed: int = 0


def _entries(doc: dict[str, Any], taxonomy: str, concept: str, unit: str) -> list[Any]:
    units = doc["facts"].get(taxonomy, {}).get(concept, {}).get("units", {})
    entries = units.get(unit, [])
    return entries if isinstance(entries, list) else []


def _fact(metric: str, concept: str, entry: Any) -> Fact | None:
    if not isinstance(entry, dict):
        return None
    try:
        end = date.fromisoformat(entry["end"])
        start = date.fromisoformat(entry["start"]) if entry.get("start") else end
        filed = date.fromisoformat(entry["filed"])
        value = entry["val"]
        if isinstance(value, bool) or not isinstance(value, int | float) or start > end:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    fy = entry.get("fy")
    return Fact(
        metric,
        start,
        end,
        filed,
        float(value),
        concept,
        fy if isinstance(fy, int) else None,
        entry.get("fp"),
        entry.get("form"),
    )


def parse(doc: Any) -> ParsedFacts:
    if not isinstance(doc, dict) or not isinstance(doc.get("facts"), dict):
        raise CompanyFactsError("not a companyfacts document: no 'facts' object")
    cik = doc.get("cik")
    parsed = ParsedFacts(
        int(cik) if isinstance(cik, int | str) and str(cik).isdigit() else None,
        doc.get("entityName"),
    )
    for metric, concepts in CONCEPTS.items():
        taken: set[tuple[date, date, date]] = set()
        for taxonomy, concept, unit in concepts:
            for entry in _entries(doc, taxonomy, concept, unit):
                if isinstance(entry, dict) and entry.get("form") not in FORMS:
                    continue
                fact = _fact(metric, f"{taxonomy}:{concept}", entry)
                if fact is None:
                    parsed.malformed += 1
                    continue
                key = (fact.start, fact.end, fact.filed)
                if key not in taken:
                    taken.add(key)
                    parsed.facts.append(fact)
    parsed.facts.extend(_debt_from_parts(doc, parsed))
    return parsed


def _debt_from_parts(doc: dict[str, Any], parsed: ParsedFacts) -> list[Fact]:
    have = {(f.end, f.filed) for f in parsed.facts if f.metric == "total_debt"}
    parts: dict[tuple[date, date], float] = {}
    noncurrent: set[tuple[date, date]] = set()
    for k, (taxonomy, concept) in enumerate(DEBT_PARTS):
        for entry in _entries(doc, taxonomy, concept, "USD"):
            if not isinstance(entry, dict) or entry.get("form") not in FORMS:
                continue
            fact = _fact("total_debt", f"{taxonomy}:{concept}", entry)
            if fact is None:
                parsed.malformed += 1
                continue
            key = (fact.end, fact.filed)
            parts[key] = parts.get(key, 0.0) + fact.value
            if k == 0:
                noncurrent.add(key)
    return [
        Fact("total_debt", end, end, filed, value, "us-gaap:LongTermDebtNoncurrent+Current")
        for (end, filed), value in sorted(parts.items())
        if (end, filed) in noncurrent and (end, filed) not in have
    ]
