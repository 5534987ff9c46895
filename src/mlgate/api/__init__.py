"""Management REST under ``/api/<version>/``: sign-in and keys, the model catalog, the V2 repository extension,
the prediction log, usage reports and ``/metrics``. Inference wire protocols live in ``mlgate.protocols``."""
