"""Worker processes: a model run by N processes, each loading it itself, fed tensors without JSON.

``protocol``: the messages (pickle protocol 5 frames, array buffers out of band); ``main``: the worker's
entry point (``python -m mlgate.workers.main``); ``process``: one worker as seen from the server;
``pool``: the Executor that spreads batches over the workers and restarts the ones that die.

Nothing is imported here: a worker process imports only ``main``, ``protocol`` and its runtime, so that
its memory stays close to the model's own (the server side lives in ``pool`` and ``process``).
"""
