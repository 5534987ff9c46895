"""Fixtures of the job tests: the real RabbitMQ (tests/jobs_helpers.py)."""

from tests.jobs_helpers import rabbitmq_queue  # noqa: F401 - fixture
