"""The policy language: models, loading with located errors, lint."""

from keypolicy.policy.errors import Issue, Location, PolicyError
from keypolicy.policy.loader import LoadedPolicy, load_policy, load_policy_text
from keypolicy.policy.model import Policy

__all__ = [
    "Issue",
    "LoadedPolicy",
    "Location",
    "Policy",
    "PolicyError",
    "load_policy",
    "load_policy_text",
]
