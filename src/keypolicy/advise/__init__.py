"""The merge advisor: every way to group a policy's domains into pools, simulated on the same
traffic, the groupings nobody beats on every count, ranked, with their headroom.

    from keypolicy.advise import Settings, advise
    from keypolicy.sim.cluster import open_executor

    with open_executor(jobs=2) as executor:
        advice = advise(policy, traffic, seeds=[0, 1, 2], executor=executor)
    print(advice.best.label)

Modules: :mod:`.partitions` (the groupings), :mod:`.candidates` (a grouping made a policy),
:mod:`.scores`, :mod:`.pareto`, :mod:`.search` (screen, simulations, front, headroom),
:mod:`.writer` (the recommended policy file), :mod:`.document` (JSON, console),
:mod:`.page` (the HTML report section).
"""

from keypolicy.advise.candidates import BaseError, Candidate, LimitRule
from keypolicy.advise.pareto import Objectives
from keypolicy.advise.partitions import ConstraintError, Constraints
from keypolicy.advise.scores import DEFAULT_RANK, METRICS
from keypolicy.advise.search import Advice, SearchTooLargeError, Settings, advise

__all__ = [
    "DEFAULT_RANK",
    "METRICS",
    "Advice",
    "BaseError",
    "Candidate",
    "ConstraintError",
    "Constraints",
    "LimitRule",
    "Objectives",
    "SearchTooLargeError",
    "Settings",
    "advise",
]
