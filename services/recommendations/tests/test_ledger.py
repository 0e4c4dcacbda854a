"""The hash chain and the replay, without a database: rows made by the real model."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.recommendations.domain import ledger, publication
from services.recommendations.domain import spec as s
from services.recommendations.domain.calibration import Calibration
from services.recommendations.domain.calls import Action, Recommendation
from services.recommendations.tests.test_model import AS_OF, geometric, universe


def published(calibration: Calibration | None = None) -> list[Recommendation]:
    panel = universe({"UP": geometric(0.003), "DOWN": geometric(-0.003)})
    calls = publication.calls_for_ledger(panel, AS_OF, s.CURRENT, calibration or Calibration())
    rows = publication.to_recommendations(
        calls, run_id=uuid.uuid4(), generated_at=datetime.now(UTC), hypothetical=False
    )
    return publication.chain(rows, prev_hash=ledger.GENESIS, prev_seq=0)


def links(rows: list[Recommendation]) -> list[tuple[ledger.Link, dict[str, object]]]:
    return [
        (ledger.Link(r.seq, r.id, r.content_hash, r.prev_hash, r.hash), r.content()) for r in rows
    ]


def test_an_untouched_chain_verifies() -> None:
    rows = published()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == ledger.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    found, head, last, checked = ledger.verify(links(rows), prev_hash=ledger.GENESIS, prev_seq=0)
    assert (found, head, last, checked) == (None, rows[-1].hash, len(rows), len(rows))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", Action.SELL),
        ("confidence", Decimal("0.999")),
        ("thesis", "Something else."),
        ("risk_factors", ()),
        ("target_price", None),
    ],
)
def test_changing_any_field_breaks_the_chain_at_that_row(field: str, value: object) -> None:
    rows = published()
    victim = 5
    tampered = list(rows)
    changes: dict[str, Any] = {field: value}
    tampered[victim] = dataclasses.replace(rows[victim], **changes)
    if tampered[victim].content() == rows[victim].content():
        tampered[victim] = dataclasses.replace(rows[victim], thesis="changed")
    found, _, last, _ = ledger.verify(links(tampered), prev_hash=ledger.GENESIS, prev_seq=0)
    assert found is not None
    assert (found.seq, found.id, found.reason) == (rows[victim].seq, rows[victim].id, "content")
    assert last == rows[victim - 1].seq


def test_a_removed_row_and_a_rewritten_chain_are_found() -> None:
    rows = published()
    gap = rows[:3] + rows[4:]
    found, *_ = ledger.verify(links(gap), prev_hash=ledger.GENESIS, prev_seq=0)
    assert found is not None and (found.seq, found.reason) == (rows[4].seq, "gap")
    # Edit a row and recompute its own hashes: the next row's prev_hash gives it away.
    edited = dataclasses.replace(rows[2], thesis="rewritten")
    relinked = ledger.link(edited.seq, edited.content(), edited.prev_hash)
    edited = dataclasses.replace(edited, content_hash=relinked.content_hash, hash=relinked.hash)
    found, *_ = ledger.verify(
        links([*rows[:2], edited, *rows[3:]]), prev_hash=ledger.GENESIS, prev_seq=0
    )
    assert found is not None and (found.seq, found.reason) == (rows[3].seq, "previous")


def test_a_replay_from_the_recorded_inputs_is_identical() -> None:
    rows = published()
    again = publication.replay(rows, Calibration())
    assert len(again) == len(rows)
    for original, replayed in zip(rows, again, strict=True):
        assert publication.differences(original, replayed) == []
        assert publication.recorded_inputs_hash(original) == original.inputs_hash
    # ... and a replay with another confidence map is not.
    fitted = Calibration.from_json({"BUY": {"xs": [0.0, 3.0], "ys": [0.9, 0.95], "matured": 999}})
    buy = next(i for i, r in enumerate(rows) if r.action.value == "BUY")
    other = publication.replay(rows, fitted)
    assert "confidence" in publication.differences(rows[buy], other[buy])


def test_the_inputs_hash_covers_the_recorded_inputs() -> None:
    row = published()[0]
    changed = dataclasses.replace(row, inputs={**row.inputs, "history_days": 1})
    assert publication.recorded_inputs_hash(changed) != row.inputs_hash


@pytest.mark.parametrize("microsecond", [0, 500_000, 7])
def test_a_stored_timestamp_reads_back_as_its_iso_text(microsecond: int) -> None:
    """``generated_at`` is stored as epoch microseconds: whole seconds lose no fraction
    digits that ``isoformat`` would not write either, and trailing zeros stay."""
    row = dataclasses.replace(
        published()[0], generated_at=datetime(2026, 12, 1, 7, 58, 41, microsecond, tzinfo=UTC)
    )
    content = row.content()
    wire = {**content, "generated_at": int(row.generated_at.timestamp()) * 10**6 + microsecond}
    wire = {k: v for k, v in wire.items() if k != "score"}
    body = ledger.canonical_json(wire)
    back = ledger.stored_content(body, row.score, {})
    assert ledger.canonical(back) == ledger.canonical(content)


def test_calls_of_an_earlier_model_version_replay_under_their_own_rules() -> None:
    """mf-1.0 calls (the demo's backfill) replay identically after mf-1.1 added risk rules."""
    panel = universe({"UP": geometric(0.0075), "DOWN": geometric(-0.003)})
    calls = publication.calls_for_ledger(panel, AS_OF, s.V1, Calibration())
    rows = publication.to_recommendations(
        calls, run_id=uuid.uuid4(), generated_at=datetime.now(UTC), hypothetical=False
    )
    assert {r.model_version for r in rows} == {"mf-1.0"}
    again = publication.replay(rows, Calibration())
    assert all(publication.differences(a, b) == [] for a, b in zip(rows, again, strict=True))
    assert not any("Extreme move" in " ".join(r.risk_factors) for r in again)
