"""The model catalog: the database-backed model registry of versions, aliases, canary and shadow traffic.

``control`` applies catalog operations to this server; ``rollouts`` loads and warms versions; ``push`` takes
archives into the artifact ``store``; ``follower`` keeps replicas in step; ``client`` is its HTTP client (CLI).
"""
