"""Writing a policy back out as YAML: the fully merged, unit-normalized form.

Durations come out in seconds, shares as fractions, money in dollars; loading the result gives
an equal :class:`Policy`. ``keypolicy check --resolved`` prints it, to show what ``extends``
made of a variant.
"""

from __future__ import annotations

import yaml

from keypolicy.policy.model import Policy

__all__ = ["dump_policy"]


def dump_policy(policy: Policy) -> str:
    """The policy as YAML text that loads back to an equal policy (``extends`` resolved)."""
    data = policy.model_dump(mode="json", exclude_none=True)
    data.pop("extends", None)
    # allow_unicode=False: PyYAML writes some code points (U+0085 and the like) raw, which its
    # own reader then takes for line breaks; escaped, every string comes back as it went.
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=False, width=100)
