"""The decision core: a sans-I/O engine that the runtime and the simulator both drive.

It never reads a clock, sleeps or touches the network (a lint rule in ``core/ruff.toml`` holds
that line). Feed it events, each carrying its time; carry out the actions it returns.
"""

from keypolicy.core.actions import (
    Action,
    Alert,
    Complete,
    Defer,
    Reject,
    RejectReason,
    Retry,
    Send,
    StoreFault,
)
from keypolicy.core.config import EngineConfig
from keypolicy.core.engine import Engine
from keypolicy.core.events import Advance, Cancel, Event, Failed, Settled, Submit
from keypolicy.core.store import Store

__all__ = [
    "Action",
    "Advance",
    "Alert",
    "Cancel",
    "Complete",
    "Defer",
    "Engine",
    "EngineConfig",
    "Event",
    "Failed",
    "Reject",
    "RejectReason",
    "Retry",
    "Send",
    "Settled",
    "Store",
    "StoreFault",
    "Submit",
]
