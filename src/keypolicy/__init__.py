"""keypolicy: one declarative policy for a fleet of LLM API keys, enforced live and simulated.

The public API is small on purpose; see README.md and ARCHITECTURE.md.
"""

from keypolicy._native import guard

guard()  # before any other module of ours loads: compiled modules only if they are fresh

from keypolicy.policy import LoadedPolicy, Policy, PolicyError, load_policy  # noqa: E402

__all__ = [
    "LoadedPolicy",
    "Policy",
    "PolicyError",
    "PolicyRejected",
    "Runtime",
    "__version__",
    "load_policy",
    "read_records",
]


def __getattr__(name: str) -> object:
    # The runtime (openai, httpx2, sqlite) loads only when asked for: the simulator, the CLI and
    # the mock server do not need it.
    if name in ("Runtime", "PolicyRejected"):
        from keypolicy import runtime  # noqa: PLC0415

        return getattr(runtime, name)
    if name == "read_records":  # pandas loads only when asked for, as the runtime does
        from keypolicy import frames  # noqa: PLC0415

        return frames.read_records
    raise AttributeError(f"module 'keypolicy' has no attribute {name!r}")

__version__ = "0.1.0"
