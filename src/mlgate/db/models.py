"""Imports every module that defines tables, so that ``Base.metadata`` knows them all (Alembic needs this).

Each feature keeps its tables in its own module (``mlgate.db.<feature>``); add the import here.
"""

from mlgate.db import (  # noqa: F401
    meta,  # noqa: F401
    predlog_table,
    registry_tables,
)
