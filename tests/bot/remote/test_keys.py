"""The claim and supersede scripts on a real Redis: every verdict, and what each leaves."""

from __future__ import annotations

import redis

from bot.remote import keys
from testkit.redis_server import RedisServer


def scripts(client: redis.Redis) -> tuple[object, object]:
    return client.register_script(keys.CLAIM), client.register_script(keys.SUPERSEDE)


def claim(client: redis.Redis, batch: str, worker: str, life: str = "") -> str:
    script, _ = scripts(client)
    return str(script(keys=[keys.batch_key(batch), keys.worker_key(worker)],  # type: ignore[operator]
                      args=[worker, keys.WORKER_PREFIX, "1.0", batch, life or f"{worker}-1"]))


def beat(client: redis.Redis, worker: str, life: str = "") -> None:
    client.hset(keys.worker_key(worker), mapping={"name": worker,
                                                  "incarnation": life or f"{worker}-1"})


def supersede(client: redis.Redis, batch: str, force: bool = False) -> str:
    _, script = scripts(client)
    return str(script(keys=[keys.batch_key(batch), keys.result_key(batch)],  # type: ignore[operator]
                      args=[keys.WORKER_PREFIX, "1" if force else "0"]))


def dispatched(client: redis.Redis, batch: str) -> None:
    client.hset(keys.batch_key(batch), mapping={"status": "dispatched", "queue": "q"})


def test_claims(redis_server: RedisServer) -> None:
    r = redis_server.client()
    assert claim(r, "b1", "w1") == "gone"  # the bot gave it up (or never sent it)
    dispatched(r, "b1")
    beat(r, "w1")
    assert claim(r, "b1", "w1") == "ok"
    assert r.hgetall(keys.batch_key("b1"))["worker"] == "w1"
    assert r.hget(keys.worker_key("w1"), "busy") == "b1"
    # A second copy while w1 lives is dropped; w1 itself (restarted) may run it again.
    assert claim(r, "b1", "w2") == "taken"
    assert claim(r, "b1", "w1") == "ok"
    # Once w1's heartbeat is gone, another worker may take the batch over.
    r.delete(keys.worker_key("w1"))
    assert claim(r, "b1", "w2") == "ok"
    assert r.hget(keys.batch_key("b1"), "worker") == "w2"


def test_supersede_verdicts(redis_server: RedisServer) -> None:
    r = redis_server.client()
    assert supersede(r, "none") == "gone"
    dispatched(r, "b1")
    assert supersede(r, "b1") == "queued"  # nobody claimed it yet: wait
    assert supersede(r, "b1", force=True) == "superseded"
    assert not r.exists(keys.batch_key("b1"))
    assert claim(r, "b1", "w1") == "gone", "a late copy finds it given up"

    dispatched(r, "b2")
    beat(r, "w1")
    assert claim(r, "b2", "w1") == "ok"
    assert supersede(r, "b2", force=True) == "alive", "never while its claimer lives"
    # Killed and restarted by its supervisor before its heartbeat expired: the new start
    # is not running the batch, so it is given up (and another copy may take it).
    beat(r, "w1", "w1-2")
    assert claim(r, "b2", "w2") == "ok"
    assert supersede(r, "b2") == "superseded"

    dispatched(r, "b3")
    beat(r, "w1")
    assert claim(r, "b3", "w1") == "ok"
    r.delete(keys.worker_key("w1"))
    r.set(keys.result_key("b3"), "{}")
    assert supersede(r, "b3") == "result", "a result that arrived wins over giving up"
    r.delete(keys.result_key("b3"))
    assert supersede(r, "b3") == "superseded"
