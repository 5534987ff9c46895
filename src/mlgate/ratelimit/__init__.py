"""Rate limits and quotas over the ``limits`` library (memory or Redis storage); see ``limiter``."""

from mlgate.ratelimit.limiter import LimitExceeded, Quota, RateLimitMetrics, RateLimits

__all__ = ["LimitExceeded", "Quota", "RateLimitMetrics", "RateLimits"]
