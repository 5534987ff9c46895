"""The broker between the server and ``mlgate worker`` processes: taskiq, on RabbitMQ or Redis.

Why taskiq (docs/jobs.md says more): it is asyncio-native like mlgate's engine (a job awaits the same data
plane, no thread or process per job), it acknowledges a message after the task ran
(``AcknowledgeType.WHEN_EXECUTED``), so a message whose worker died is delivered again (RabbitMQ requeues
the unacknowledged messages of a closed connection; Redis streams re-claim them after ``idle_timeout``; the server
also sends again the jobs whose runner's lease ran out), and
its brokers (taskiq-aio-pika, taskiq-redis) are maintained alongside it. A message carries only the job's id;
the job itself is a database row (``mlgate.db.tables.jobs``), which is what makes a redelivery harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from taskiq import AsyncBroker
from taskiq.acks import AcknowledgeType
from taskiq.kicker import AsyncKicker
from taskiq.receiver import Receiver

__all__ = ["TASK_NAME", "JobBroker", "make_broker"]

TASK_NAME = "mlgate.run_job"
"""The one task: run the job whose id the message carries."""


def make_broker(url: str, queue: str, prefetch: int, *, redis_idle_timeout_s: float = 60.0) -> AsyncBroker:
    """A taskiq broker for ``url`` (``amqp://``/``amqps://`` RabbitMQ, ``redis://``/``rediss://`` Redis).

    ``prefetch``: messages a worker holds at once (RabbitMQ QoS), so one worker does not hoard the queue.
    Raises ValueError for another scheme.
    """
    if url.startswith(("amqp://", "amqps://")):
        from taskiq_aio_pika import AioPikaBroker
        from taskiq_aio_pika.exchange import Exchange
        from taskiq_aio_pika.queue import Queue

        return AioPikaBroker(url, qos=prefetch, exchange=Exchange(name=queue),
                             task_queues=[Queue(name=queue, routing_key="#")])
    if url.startswith(("redis://", "rediss://")):
        from taskiq_redis import RedisStreamBroker

        return RedisStreamBroker(url, queue_name=queue, consumer_group_name=queue,
                                 idle_timeout=int(redis_idle_timeout_s * 1000), xread_block=500,
                                 xread_count=prefetch)
    raise ValueError(f"jobs_broker {url.split(':', 1)[0]!r}: expected amqp://... (RabbitMQ) or redis://... (Redis)")


class JobBroker:
    """Sends job ids (the server) and receives them (``mlgate worker``) over one taskiq broker."""

    def __init__(self, url: str, queue: str, prefetch: int, *, redis_idle_timeout_s: float = 60.0) -> None:
        self.broker = make_broker(url, queue, prefetch, redis_idle_timeout_s=redis_idle_timeout_s)

    async def start(self) -> None:
        await self.broker.startup()

    async def close(self) -> None:
        await self.broker.shutdown()

    async def send(self, job_id: str) -> None:
        """Queue the job's id for a worker."""
        await AsyncKicker[[str], None](TASK_NAME, self.broker, labels={}).kiq(job_id)

    async def serve(self, handler: Callable[[str], Awaitable[None]], concurrency: int,
                    finish: asyncio.Event, *, drain_timeout_s: float | None = None) -> None:
        """Run ``handler(job_id)`` for each message, ``concurrency`` at a time, acknowledging each after it
        ran, until ``finish`` is set; then wait up to ``drain_timeout_s`` for the running ones."""
        self.broker.is_worker_process = True

        async def run_job(job_id: str) -> None:
            await handler(job_id)

        self.broker.register_task(run_job, task_name=TASK_NAME)
        receiver = Receiver(self.broker, max_async_tasks=concurrency, ack_type=AcknowledgeType.WHEN_EXECUTED,
                            run_startup=True, propagate_exceptions=True, wait_tasks_timeout=drain_timeout_s)
        await receiver.listen(finish)
