"""What the example builders share: the demo's open access tables and TOML list formatting."""

from __future__ import annotations

import json

__all__ = ["DEMO_ACCESS", "toml_list", "toml_numbers"]

DEMO_ACCESS = """
# A public demo built from public data: open to callers without credentials, with no rate limit for them.
# Models of your own are closed to anonymous callers unless their manifest says otherwise.
[access]
anonymous = true

[rate_limit.anonymous]
requests = ""
rows = ""
"""


def toml_list(values: list[str]) -> str:
    """A TOML array of strings."""
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def toml_numbers(values: object) -> str:
    """A TOML array of numbers, nested like ``values`` (a numpy array or nested lists): an ``example`` row."""
    rows = values.tolist() if hasattr(values, "tolist") else values
    return json.dumps(rows)
