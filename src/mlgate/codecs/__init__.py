"""Conversions between wire formats (V2 JSON, V1 instances, raw JSON bytes) and numpy arrays."""
