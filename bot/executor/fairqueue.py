"""Round-robin queue across users, so one person's ten jobs don't starve everyone else.

Not thread-safe by itself: the executor guards it with its lock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator

from bot.executor.jobs import Job


class FairQueue:
    def __init__(self) -> None:
        # Users in serving order; the first one is served next.
        self._users: OrderedDict[int, deque[Job]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(q) for q in self._users.values())

    def count_for(self, user_id: int) -> int:
        return len(self._users.get(user_id, ()))

    def push(self, job: Job) -> None:
        self._users.setdefault(job.user_id, deque()).append(job)

    def push_front(self, job: Job) -> None:
        """Put a job back at the head (a batch member that must run again alone)."""
        self._users.setdefault(job.user_id, deque()).appendleft(job)
        self._users.move_to_end(job.user_id, last=False)

    def remove(self, job_id: str) -> Job | None:
        for user_id, jobs in self._users.items():
            for job in jobs:
                if job.id == job_id:
                    jobs.remove(job)
                    if not jobs:
                        del self._users[user_id]
                    return job
        return None

    def ordered(self) -> Iterator[Job]:
        """Jobs in the order they would run if nothing else arrived: round k serves every
        user's k-th job, users in serving order."""
        queues = list(self._users.values())
        depth = max((len(q) for q in queues), default=0)
        for k in range(depth):
            for q in queues:
                if k < len(q):
                    yield q[k]

    def pop_batch(
        self, key: Callable[[Job], Hashable | None], size: Callable[[Job], int], limit: int,
        eligible: Callable[[Job], bool] | None = None,
    ) -> list[Job]:
        """The next job in fair order plus later compatible jobs, up to `limit` total size.

        A user's jobs are only taken in their own order: once one of a user's jobs is skipped
        as incompatible, that user's later jobs are skipped too. `eligible` leaves out jobs
        that cannot run here at all (a remote worker without their model): they keep their
        place for a worker that has it.
        """
        order = [j for j in self.ordered() if eligible is None or eligible(j)]
        if not order:
            return []
        first = order[0]
        batch, used = [first], size(first)
        batch_key = key(first)
        if batch_key is not None:
            blocked: set[int] = set()
            for job in order[1:]:
                if job.user_id in blocked:
                    continue
                if key(job) != batch_key or used + size(job) > limit:
                    blocked.add(job.user_id)
                    continue
                batch.append(job)
                used += size(job)
        for job in batch:
            jobs = self._users[job.user_id]
            jobs.remove(job)
            # Served users go to the back of the rotation.
            if jobs:
                self._users.move_to_end(job.user_id)
            else:
                del self._users[job.user_id]
        return batch
