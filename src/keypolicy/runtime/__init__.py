"""The runtime: the policy enforced on live ``openai`` calls (the engine's second driver).

``Runtime`` hands out real ``openai`` clients per domain; ``PolicyRejected`` is what a call the
policy refuses raises. See README.md ("In your service") and ARCHITECTURE.md.
"""

from keypolicy.runtime.clock import Clock, FakeClock, WallClock
from keypolicy.runtime.errors import PolicyRejected
from keypolicy.runtime.runtime import Runtime
from keypolicy.runtime.secrets import MissingKeysError

__all__ = ["Clock", "FakeClock", "MissingKeysError", "PolicyRejected", "Runtime", "WallClock"]
