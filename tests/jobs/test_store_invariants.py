"""The job queue's bookkeeping, held to its invariants by a Hypothesis state machine: whatever
workers claim, send, release, end, die and take over, in whatever order,

- a job is held by at most one worker, and only a worker that holds it can end it;
- a job ends at most once, and is in the ledger (``usage``) exactly once when it has ended,
  never before;
- a job that may have been sent is never handed back to waiting by a takeover (it is left for
  the new worker to reconcile: see the worker), and one never sent always is.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from keypolicy.jobs.model import JobRecord
from keypolicy.jobs.store import SQLiteJobStore
from keypolicy.ledger import Ledger
from keypolicy.records import UsageRecord

OWNERS = ("w1", "w2", "w3")
JOBS = tuple(f"job_{i}" for i in range(5))


def _record(job_id: str) -> UsageRecord:
    return UsageRecord(
        request_id=job_id,
        domain="scheduling",
        model="gpt-4o-mini",
        key="office-a",
        project="office",
        priority="background",
        submitted=0.0,
        started=1.0,
        finished=2.0,
        wait_s=1.0,
        attempts=1,
        outcome="ok",
        reason="",
        prompt_tokens=10,
        cached_tokens=0,
        completion_tokens=5,
        cost_usd=0.001,
        batch=False,
        deferred=True,
        requested_model="gpt-4o-mini",
        requested_prompt_tokens=10,
        requested_max_tokens=50,
        usage_estimated=False,
    )


class Queue(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "usage.sqlite"
        Ledger(path).close()  # the usage table, as the runtime makes it
        self.store = SQLiteJobStore(path, records_in_db=True)
        self.now = 100.0
        self.alive = set(OWNERS)
        self.holder: dict[str, str | None] = {}
        self.sent: dict[str, bool] = {}
        self.ended: set[str] = set()
        for job_id in JOBS:
            self.store.add(
                JobRecord(
                    id=job_id,
                    key=None,
                    domain="scheduling",
                    endpoint="chat.completions",
                    mode="queue",
                    model="gpt-4o-mini",
                    body={"messages": [{"role": "user", "content": "hi"}]},
                    status="waiting",
                    created=0.0,
                    deadline=1e9,
                    not_before=0.0,
                    prompt_tokens=10,
                )
            )
            self.holder[job_id] = None
            self.sent[job_id] = False

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    def _alive(self, owner: str, me: str) -> bool | None:
        return owner in self.alive

    @rule(owner=st.sampled_from(OWNERS), most=st.integers(1, 3))
    def claim(self, owner: str, most: int) -> None:
        if owner not in self.alive:
            return
        taken = self.store.claim(owner, "queue", ["scheduling"], self.now, self.now + 60, most)
        for job in taken:
            assert self.holder[job.id] is None, (
                f"{job.id} claimed while {self.holder[job.id]} held it"
            )
            assert job.id not in self.ended
            self.holder[job.id] = owner
            self.sent[job.id] = False

    @rule(job_id=st.sampled_from(JOBS), owner=st.sampled_from(OWNERS))
    def send(self, job_id: str, owner: str) -> None:
        marked = self.store.mark_sent(job_id, owner)
        assert marked == (self.holder[job_id] == owner and job_id not in self.ended)
        if marked:
            self.sent[job_id] = True

    @rule(job_id=st.sampled_from(JOBS), owner=st.sampled_from(OWNERS))
    def release(self, job_id: str, owner: str) -> None:
        done = self.store.release(job_id, owner, self.now)
        assert done == (self.holder[job_id] == owner and job_id not in self.ended)
        if done:
            self.holder[job_id] = None
            self.sent[job_id] = False

    @rule(job_id=st.sampled_from(JOBS), owner=st.sampled_from(OWNERS))
    def end(self, job_id: str, owner: str) -> None:
        done = self.store.finish(job_id, owner, "done", self.now, record=_record(job_id))
        assert done == (self.holder[job_id] == owner and job_id not in self.ended)
        if done:
            self.ended.add(job_id)
            self.holder[job_id] = None

    @precondition(lambda self: len(self.alive) > 1)
    @rule(owner=st.sampled_from(OWNERS))
    def die(self, owner: str) -> None:
        self.alive.discard(owner)

    @rule(owner=st.sampled_from(OWNERS))
    def take_over(self, owner: str) -> None:
        if owner not in self.alive:
            return
        jobs, _ = self.store.orphans(owner, self.now, self.now + 60, self._alive)
        for job in jobs:
            assert self.holder[job.id] not in self.alive or self.holder[job.id] is None
            assert job.sent == self.sent[job.id]
            self.holder[job.id] = owner
            if not job.sent:  # as the worker does: never sent, so it waits again
                assert self.store.release(job.id, owner, self.now)
                self.holder[job.id] = None

    @rule()
    def time_passes(self) -> None:
        self.now += 30

    @invariant()
    def each_ended_job_is_in_the_ledger_once(self) -> None:
        rows = self.store._db.execute("SELECT request_id, count(*) FROM usage GROUP BY 1")
        counted = dict(rows.fetchall())
        assert set(counted) == self.ended
        assert all(n == 1 for n in counted.values())
        statuses = {j.id: j.status for j in self.store.find()}
        for job_id in JOBS:
            expected = (
                "done"
                if job_id in self.ended
                else ("running" if self.holder[job_id] else "waiting")
            )
            assert statuses[job_id] == expected, (job_id, statuses[job_id], expected)


TestQueue = Queue.TestCase
TestQueue.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
