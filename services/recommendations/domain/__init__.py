"""Pure recommendation logic (no I/O): the multi-factor model and the calls it makes.

- :mod:`.spec`: the versioned model (factors, weights, bands, horizon, risk thresholds).
- :mod:`.factors`: factor values for the whole universe from a point-in-time price panel.
- :mod:`.scoring`: cross-sectional z-scores, the composite score, actions, targets.
- :mod:`.calibration`: confidence as a monotone (isotonic) map fitted on matured calls.
- :mod:`.narrative`: the thesis, the risk factors, the methodology disclosure.
- :mod:`.calls`: the published call and what counts as a change for the run event.
"""

from services.recommendations.domain.calls import (
    Action,
    Recommendation,
    Run,
    action_changes,
    chunks,
)

__all__ = ["Action", "Recommendation", "Run", "action_changes", "chunks"]
