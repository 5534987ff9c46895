"""Worker processes: a model run by N processes, each loading it itself, fed tensors without JSON.

``protocol``: the messages (pickle protocol 5 frames, array buffers out of band); ``main``: the worker's
entry point (``python -m mlgate.workers.main``); ``process``: one worker as seen from the server;
``pool``: the Executor that spreads batches over the workers and restarts the ones that die.
"""

from mlgate.workers.pool import WorkerPool

__all__ = ["WorkerPool"]
