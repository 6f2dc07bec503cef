"""The Redis keys the bot and its workers share, and the two scripts that settle their races.

Celery carries the tasks (one per batch); these keys carry everything Celery does not:

- `greenheart:worker:NAME`: a worker's heartbeat (a hash that expires when it stops beating):
  what it serves, whether it is busy, how fast it is, and its incarnation (new each start).
- `greenheart:batch:ID`: the batch the bot sent: "dispatched", then "claimed" by the worker
  that runs it. The bot deletes it once it has the result, or when it gives the batch up
  ("supersedes" it, and sends its jobs again under a new id).
- `greenheart:result:ID`: what a worker made of a batch. It waits (for days) until the bot
  has recorded it in SQLite, so a bot that restarts while workers render loses nothing.
- `greenheart:cancelled`: job ids the bot cancelled (a sorted set by time), for a worker that
  claims a batch after the cancel was published.
- channels `greenheart:events` (worker → bot: started, progress, result) and
  `greenheart:cancels` (bot → workers). Pub/sub is lossy: nothing depends on it but speed.

Why a claim at all, when Celery already has late acks: Celery hands a task to a second worker
when the first is lost (after the broker's visibility timeout), and the bot sends a batch
again when its worker's heartbeat stops (sooner). Either way two copies of a batch can exist.
The claim lets only one run while its claimer lives, and a copy of a batch the bot has given
up on finds its key gone and is dropped. A copy that still runs (its claimer died just after
writing its result, say) only makes a duplicate result, which the bot ignores by job id.
"""

from __future__ import annotations

PREFIX = "greenheart"
EVENTS = f"{PREFIX}:events"
CANCELS = f"{PREFIX}:cancels"
CANCELLED = f"{PREFIX}:cancelled"
WORKER_PREFIX = f"{PREFIX}:worker:"
RESULT_PREFIX = f"{PREFIX}:result:"
# A result the bot has not taken after this long is dropped (the bot was gone for a week).
RESULT_TTL_S = 7 * 86400
# Cancels older than this are forgotten (no batch waits that long to be claimed).
CANCEL_MEMORY_S = 86400


def worker_key(name: str) -> str:
    return f"{WORKER_PREFIX}{name}"


def batch_key(batch_id: str) -> str:
    return f"{PREFIX}:batch:{batch_id}"


def result_key(batch_id: str) -> str:
    return f"{RESULT_PREFIX}{batch_id}"


# A worker's claim on a batch it received. KEYS: batch, the worker's heartbeat, result.
# ARGV: worker name, heartbeat key prefix, now, batch id, the worker's incarnation (a token
# new at each start: a worker restarted under its name is not the one that claimed before).
# Atomic: no other claim or supersede can come between the check and the write.
#   gone  - the bot gave this batch up: drop the task
#   done  - its result is stored already (this is a second copy): drop it
#   taken - a live worker runs it, or this very start of this worker already did (a worker
#           runs one batch at a time, so a copy it receives is not the one it is on): drop
#   ok    - run it (also when the claimer that came before is gone)
CLAIM = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 'done' end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local status = redis.call('HGET', KEYS[1], 'status')
local owner = redis.call('HGET', KEYS[1], 'worker')
if status == 'claimed' and owner then
  local claimed_by = redis.call('HGET', KEYS[1], 'incarnation')
  if owner == ARGV[1] and claimed_by == ARGV[5] then return 'taken' end
  local life = redis.call('HGET', ARGV[2] .. owner, 'incarnation')
  if owner ~= ARGV[1] and life and life == claimed_by then return 'taken' end
end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'worker', ARGV[1], 'claimed_at', ARGV[3],
           'incarnation', ARGV[5])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], 'busy', ARGV[4]) end
return 'ok'
"""

# The bot giving a batch up. KEYS: batch, result. ARGV: heartbeat key prefix, force ("1":
# give it up even though no worker has claimed it yet: it waited past the visibility timeout),
# the batch id, idle ("1": also from a live claimer whose heartbeat says it is not on it).
# Its claimer is alive only while the same incarnation beats: a worker that was killed and
# restarted by its supervisor within the heartbeat timeout is not running the batch.
#   result     - its result is there after all: take that instead
#   gone       - there is no such batch (Redis lost it, or it was given up before)
#   alive      - its claimer is alive: keep waiting
#   queued     - nobody claimed it yet and it is not forced: keep waiting
#   superseded - deleted; a copy that turns up later is dropped
SUPERSEDE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'result' end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'claimed' then
  local owner = redis.call('HGET', KEYS[1], 'worker')
  local life = owner and redis.call('HGET', ARGV[1] .. owner, 'incarnation')
  if life and life == redis.call('HGET', KEYS[1], 'incarnation') then
    local on_it = redis.call('HGET', ARGV[1] .. owner, 'busy') == ARGV[3]
    if on_it or ARGV[4] ~= '1' then return 'alive' end
  end
elseif ARGV[2] ~= '1' then
  return 'queued'
end
redis.call('DEL', KEYS[1])
return 'superseded'
"""
