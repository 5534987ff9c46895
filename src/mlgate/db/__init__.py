"""The relational database: SQLAlchemy 2 (async) models, the engine, and Alembic migrations.

SQLite file by default (``sqlite+aiosqlite``), PostgreSQL with ``MLGATE_DATABASE_URL=postgresql+asyncpg://...``.
Foreign exceptions (SQLAlchemy's) are translated into mlgate errors inside this package.
"""
