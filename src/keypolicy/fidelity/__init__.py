"""Does the simulator predict the runtime? Replay traffic live, and compare with the prediction.

- :mod:`~keypolicy.fidelity.replay`: the traffic the simulator would simulate, sent at its
  (scaled) times through the live :class:`~keypolicy.runtime.Runtime` against a provider;
- :mod:`~keypolicy.fidelity.compare`: the simulator's records (or summary) against the runtime's
  ledger, per domain and in total, each figure with its relative error and goal;
- :mod:`~keypolicy.fidelity.table`: that comparison as a terminal table.

This package drives both the simulator and the runtime; neither imports it.
"""

from keypolicy.fidelity.compare import (
    Check,
    Comparison,
    FidelityInputError,
    Figures,
    compare,
    fidelity_line,
    read_figures,
)
from keypolicy.fidelity.replay import Replay, ReplayProgress, ReplaySettings
from keypolicy.fidelity.window import TrafficWindow

__all__ = [
    "Check",
    "Comparison",
    "FidelityInputError",
    "Figures",
    "Replay",
    "ReplayProgress",
    "ReplaySettings",
    "TrafficWindow",
    "compare",
    "fidelity_line",
    "read_figures",
]
