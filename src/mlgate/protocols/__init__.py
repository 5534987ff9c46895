"""Inference wire protocols: KServe V2 (``v2``), KServe V1 / TF-Serving (``v1``), OpenAI embeddings (``openai``),
with what they share: the one security entry point (``security``), typed request and server state (``state``),
the inference routes (``routes``), body reading (``body``) and the one error map (``errors``)."""
