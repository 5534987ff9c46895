"""Jobs: the W3C ``traceparent`` of the request that submitted a job, so its run continues that trace.

Expand only (a nullable column): the previous release ignores it.

Revision ID: 0007_jobs_trace
Revises: 0006_job_results
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_jobs_trace"
down_revision = "0006_job_results"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("traceparent", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("traceparent")
