"""keypolicy: one declarative policy for a fleet of LLM API keys, enforced live and simulated.

The public API is small on purpose; see README.md and ARCHITECTURE.md.
"""

from keypolicy._native import guard

guard()  # before any other module of ours loads: compiled modules only if they are fresh

from keypolicy.policy import LoadedPolicy, Policy, PolicyError, load_policy  # noqa: E402

__all__ = ["LoadedPolicy", "Policy", "PolicyError", "__version__", "load_policy"]

__version__ = "0.1.0"
