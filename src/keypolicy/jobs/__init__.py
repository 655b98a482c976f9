"""Work that can wait: a durable job queue for deferrable domains, run live or through the
Batch API.

``rt.defer(domain, endpoint, body)`` queues a job (:class:`Job`) in the ledger's database
(:mod:`keypolicy.jobs.store`); a worker (:mod:`keypolicy.jobs.worker`, a thread of the runtime or
``keypolicy worker``) runs it as the policy says: ``defer: queue`` domains as live calls inside
their windows (:mod:`keypolicy.jobs.queued`), ``defer: batch`` domains gathered into Batch API
files (:mod:`keypolicy.jobs.batcher`). ``rt.jobs()`` and ``keypolicy jobs LEDGER`` find jobs
again, after a restart too.
"""

from keypolicy.jobs.handle import Job, JobError
from keypolicy.jobs.model import STATUSES, JobRecord, JobStatus
from keypolicy.jobs.settings import JobSettings

__all__ = ["STATUSES", "Job", "JobError", "JobRecord", "JobSettings", "JobStatus"]
