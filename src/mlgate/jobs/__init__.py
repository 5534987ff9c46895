"""Durable inference jobs: a request queued, run in the background, its state and result kept in the database.

``JobService`` (``service``) is what the REST API and the inference routes call: submit, read, cancel. Jobs run
in a ``JobRunner`` (``runner``): the server's own (the embedded default) or ``mlgate worker`` processes fed by
a broker (``broker``: RabbitMQ or Redis through taskiq). ``execute`` runs one job's request through the same
decode -> infer -> encode as the synchronous route, so a job's result is the body that route returns.
"""

from mlgate.jobs.execute import PROTOCOLS, error_body, execute, validate
from mlgate.jobs.runner import JobRunner
from mlgate.jobs.service import JobService, job_view

__all__ = ["PROTOCOLS", "JobRunner", "JobService", "error_body", "execute", "job_view", "validate"]
