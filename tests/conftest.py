"""Test-wide settings.

Hypothesis profiles: ``default`` keeps the suite fast for CI; ``thorough`` (set
``HYPOTHESIS_PROFILE=thorough``) runs fifteen times the examples, for hunting bugs locally.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
