"""A mock OpenAI server that rate-limits, answers and fails like the real one.

It serves the provider model (:mod:`keypolicy.upstream`) over HTTP on loopback, in wall time run
``speed`` times faster, to the real ``openai`` client: chat completions (streamed too), responses,
embeddings, models, files and batches. Keys are accepted when a policy key names them through its
environment variable; secrets never reach its logs.
"""

from keypolicy.mock.app import ROUTES, build_state, create_app
from keypolicy.mock.auth import Caller, KeyRing
from keypolicy.mock.clock import ScaledClock
from keypolicy.mock.options import MockOptions
from keypolicy.mock.server import MockServer, run_mock_server
from keypolicy.mock.state import MockState

__all__ = [
    "ROUTES",
    "Caller",
    "KeyRing",
    "MockOptions",
    "MockServer",
    "MockState",
    "ScaledClock",
    "build_state",
    "create_app",
    "run_mock_server",
]
