"""The pure-ASGI edge in front of FastAPI (``middleware.EdgeMiddleware``) and the helpers it composes: request
id, client address, body limit, deprecation / rate-limit / security headers, and the inference fast path.
No BaseHTTPMiddleware: it breaks context variables."""
