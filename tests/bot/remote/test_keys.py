"""The claim and supersede scripts on a real Redis: every verdict, and what each leaves."""

from __future__ import annotations

import redis

from bot.remote import keys
from testkit.redis_server import RedisServer


def claim(client: redis.Redis, batch: str, worker: str, life: str = "") -> str:
    script = client.register_script(keys.CLAIM)
    return str(script(keys=[keys.batch_key(batch), keys.worker_key(worker),
                            keys.result_key(batch)],
                      args=[worker, keys.WORKER_PREFIX, "1.0", batch, life or f"{worker}-1"]))


def supersede(client: redis.Redis, batch: str, force: bool = False,
              idle: bool = False) -> str:
    script = client.register_script(keys.SUPERSEDE)
    return str(script(keys=[keys.batch_key(batch), keys.result_key(batch)],
                      args=[keys.WORKER_PREFIX, "1" if force else "0", batch,
                            "1" if idle else "0"]))


def beat(client: redis.Redis, worker: str, life: str = "", busy: str = "") -> None:
    client.hset(keys.worker_key(worker), mapping={
        "name": worker, "incarnation": life or f"{worker}-1", "busy": busy})


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
    # A second copy while w1 lives is dropped, by w1 itself too (it is on it already).
    assert claim(r, "b1", "w2") == "taken"
    assert claim(r, "b1", "w1") == "taken"
    # w1 restarted under its name: a new start may run it again.
    beat(r, "w1", "w1-2")
    assert claim(r, "b1", "w1", "w1-2") == "ok"
    # Once the claimer's heartbeat is gone, another worker may take the batch over.
    r.delete(keys.worker_key("w1"))
    assert claim(r, "b1", "w2") == "ok"
    assert r.hget(keys.batch_key("b1"), "worker") == "w2"
    assert not r.exists(keys.worker_key("w2")), "a claim never makes a heartbeat up"
    # A copy that turns up once the result is stored is not run again.
    r.set(keys.result_key("b1"), "{}")
    assert claim(r, "b1", "w3") == "done"


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
    assert supersede(r, "b2", force=True) == "alive", "never while its claimer is on it"
    assert supersede(r, "b2", idle=True) == "alive"
    # Alive but on nothing (it failed outside the batch, or lost its result): given up
    # only when the bot asks for that.
    beat(r, "w1", busy="")
    assert supersede(r, "b2") == "alive"
    assert supersede(r, "b2", idle=True) == "superseded"

    # Killed and restarted by its supervisor before its heartbeat expired: the new start
    # is not running the batch, so it is given up (and another copy may take it).
    dispatched(r, "b3")
    beat(r, "w1")
    assert claim(r, "b3", "w1") == "ok"
    beat(r, "w1", "w1-2", busy="")
    assert claim(r, "b3", "w2") == "ok"
    r.hset(keys.worker_key("w2"), mapping={"name": "w2"})  # w2 has no incarnation: gone
    assert supersede(r, "b3") == "superseded"

    dispatched(r, "b4")
    beat(r, "w1")
    assert claim(r, "b4", "w1") == "ok"
    r.delete(keys.worker_key("w1"))
    r.set(keys.result_key("b4"), "{}")
    assert supersede(r, "b4") == "result", "a result that arrived wins over giving up"
    r.delete(keys.result_key("b4"))
    assert supersede(r, "b4") == "superseded"
