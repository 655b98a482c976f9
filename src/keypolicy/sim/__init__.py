"""The simulator: replay traffic through a policy on SimPy's virtual clock.

Traffic (synthetic profiles, trace files) comes from :mod:`keypolicy.sim.traffic`; the driver
(:mod:`keypolicy.sim.driver`) feeds it to the decision core and the provider model; metrics and
summaries come from :mod:`keypolicy.metrics` and :mod:`keypolicy.sim.run`.
"""

from keypolicy.sim.run import simulate_policy

__all__ = ["simulate_policy"]
