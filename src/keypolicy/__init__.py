"""keypolicy: one declarative policy for a fleet of LLM API keys, enforced live and simulated.

The public API is small on purpose; see README.md and ARCHITECTURE.md.
"""

from keypolicy.policy import LoadedPolicy, Policy, PolicyError, load_policy

__all__ = ["LoadedPolicy", "Policy", "PolicyError", "__version__", "load_policy"]

__version__ = "0.1.0"
