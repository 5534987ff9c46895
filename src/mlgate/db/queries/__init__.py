"""Queries over the tables in ``mlgate.db.tables``, one module per feature; SQLAlchemy errors become mlgate's."""
