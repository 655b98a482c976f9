"""A request as the engine tracks it between submission and its last action."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from keypolicy.core.budgets import Hold
from keypolicy.core.config import DomainDef

__all__ = ["Pending"]


@dataclass(slots=True, init=False)
class Pending:
    """One request in the engine. Tokens are counts; times are epoch seconds.

    ``state``: ``queued`` (waiting for capacity), ``delayed`` (parked or backing off until a
    time), ``inflight`` (sent, not settled), ``batch`` (handed to the Batch API).
    ``charges`` are the (bucket index, units) the current attempt took; ``holds`` the budget USD.
    ``model`` is the model family it draws on and is priced at; ``snapshot`` the dated snapshot of
    it that the caller named (``""``: none), which is the name it goes out under.
    """

    id: str
    domain: DomainDef
    model: str
    prompt: int
    rate_prompt: int
    max_out: int
    n: int
    submitted: float
    seq: int
    deadline: float = math.inf
    attempts: int = 0
    state: str = "new"
    key: int = -1
    pinned: int = -1
    deferred: bool = False
    estimate_usd: float = 0.0
    charges: list[tuple[int, float]] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    submitted_wait: float = 0.0  # when its current wait for capacity began (set on creation)
    tried: set[str] = field(default_factory=set)  # models it was downgraded from
    sent_at: float = 0.0  # when the current attempt was sent
    fit_epoch: int = -1  # the limits epoch in which it was last found to fit some key
    # Found blocked, and what would change that: see Engine._try. Valid before stall_until.
    stall_until: float = -math.inf
    stall_mark: tuple[int, int, int] = (-1, -1, -1)
    stall_blocked: frozenset[int] = frozenset()
    stall_claims: frozenset[int] = frozenset()
    stall_wake: float = math.inf
    snapshot: str = ""

    def __init__(
        self,
        id: str,
        domain: DomainDef,
        model: str,
        prompt: int,
        rate_prompt: int,
        max_out: int,
        n: int,
        submitted: float,
        seq: int,
        deadline: float = math.inf,
        attempts: int = 0,
        state: str = "new",
        key: int = -1,
        pinned: int = -1,
        deferred: bool = False,
        estimate_usd: float = 0.0,
        submitted_wait: float = 0.0,
        sent_at: float = 0.0,
        fit_epoch: int = -1,
        stall_until: float = -math.inf,
        stall_mark: tuple[int, int, int] = (-1, -1, -1),
        stall_blocked: frozenset[int] = frozenset(),
        stall_claims: frozenset[int] = frozenset(),
        stall_wake: float = math.inf,
        snapshot: str = "",
    ) -> None:
        self.id = id
        self.domain = domain
        self.model = model
        self.prompt = prompt
        self.rate_prompt = rate_prompt
        self.max_out = max_out
        self.n = n
        self.submitted = submitted
        self.seq = seq
        self.deadline = deadline
        self.attempts = attempts
        self.state = state
        self.key = key
        self.pinned = pinned
        self.deferred = deferred
        self.estimate_usd = estimate_usd
        self.charges = []
        self.holds = []
        self.submitted_wait = submitted_wait
        self.tried = set()
        self.sent_at = sent_at
        self.fit_epoch = fit_epoch
        self.stall_until = stall_until
        self.stall_mark = stall_mark
        self.stall_blocked = stall_blocked
        self.stall_claims = stall_claims
        self.stall_wake = stall_wake
        self.snapshot = snapshot

    @property
    def rank(self) -> int:
        """The priority class: 0 is the most urgent."""
        return self.domain.rank

    @property
    def sent_model(self) -> str:
        """The model name the request goes out under: the snapshot named, else the model."""
        return self.snapshot or self.model

    @property
    def charge_tokens(self) -> int:
        """What the provider charges its token limits at admission."""
        return self.rate_prompt + self.max_out * self.n
