"""Stores for the state replicas share: in memory now, Redis behind the same interface later."""

from keypolicy.state.memory import MemoryStore

__all__ = ["MemoryStore"]
