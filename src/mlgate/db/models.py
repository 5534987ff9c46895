"""Imports every module that defines tables, so that ``Base.metadata`` knows them all (Alembic needs this).

Each feature keeps its tables in its own module (``mlgate.db.<feature>``); add the import here.
"""

from mlgate.db import audit, auth, meta, predlog_table, registry_tables  # noqa: F401
