"""Pure ASGI middleware, one class per module (no BaseHTTPMiddleware: it breaks context variables)."""
