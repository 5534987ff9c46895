"""Jobs: a large result is kept in the artifact store, the row holds its URI (``jobs.result_uri``).

Revision ID: 0006_job_results
Revises: 0005_predlog_errors
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_job_results"
down_revision = "0005_predlog_errors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("result_uri", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result_uri")
