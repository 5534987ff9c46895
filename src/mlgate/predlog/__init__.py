"""The prediction log: the buffered ``writer`` that records every served and refused request, and ``usage``
reports computed from it."""
