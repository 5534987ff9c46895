"""Prediction log: the error code and message of refused and failed requests; an index on the request id.

Revision ID: 0005_predlog_errors
Revises: 0004_jobs
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_predlog_errors"
down_revision = "0004_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("prediction_log", sa.Column("error_code", sa.String(64), nullable=True))
    op.add_column("prediction_log", sa.Column("error_message", sa.String(1024), nullable=True))
    op.create_index(op.f("ix_prediction_log_request_id"), "prediction_log", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_prediction_log_request_id"), table_name="prediction_log")
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("error_message")
        batch.drop_column("error_code")
