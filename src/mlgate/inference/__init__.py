"""The transport-free request path, in reading order: ``dataplane`` (one inference request in, one response
out), ``registry`` (the loaded models), ``traffic`` (alias, canary and shadow routing), ``engine`` and
``batching`` (dynamic batching onto executors), ``embeddings`` (the OpenAI embeddings path)."""
