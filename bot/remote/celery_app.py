"""The Celery app the bot sends batches with and the workers run them with (the same config
on both sides: Celery requires the visibility timeout to match)."""

from __future__ import annotations

from celery import Celery

from bot.config import Settings


def make_celery(settings: Settings) -> Celery:
    e = settings.executor
    app = Celery("greenheart", broker=e.broker_url, set_as_current=False)
    app.conf.update(
        # A batch is acknowledged when it is done, not when it is received, and a worker
        # holds one at a time: a worker lost mid-batch leaves it to be delivered again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis hands an unacknowledged task to another worker after this long, so it must
        # be longer than any batch runs (the broker's default is one hour). The bot does not
        # wait for it: it sends a lost worker's batch again as soon as its heartbeat stops.
        broker_transport_options={"visibility_timeout": e.visibility_timeout_s},
        # A running batch goes on when the broker connection drops; its result is written
        # once Redis is back (bot/remote/worker.py).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,  # results travel as keys of their own (bot/remote/keys.py)
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
