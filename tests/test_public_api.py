"""The public surface is what __all__ says, and every name in it exists."""

from __future__ import annotations

import mlgate


def test_all_names_exist_and_are_sorted() -> None:
    for name in mlgate.__all__:
        assert hasattr(mlgate, name), name
    assert list(mlgate.__all__) == sorted(mlgate.__all__)


def test_no_public_name_is_missing_from_all() -> None:
    public = {n for n in vars(mlgate) if not n.startswith("_") and not isinstance(getattr(mlgate, n), type(mlgate))}
    assert public <= set(mlgate.__all__)
