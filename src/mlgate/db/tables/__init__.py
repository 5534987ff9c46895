"""The tables, one module per feature. Importing this package registers every table on ``Base.metadata``
(Alembic's autogenerate and ``create_all`` need them all); add a new feature's module to the import below."""

from mlgate.db.tables import audit, catalog, identity, jobs, meta, predlog  # noqa: F401
