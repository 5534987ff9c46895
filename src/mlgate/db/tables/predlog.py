"""The prediction log: one row per inference request (and per shadow request).

Inputs and outputs are kept only for the sampled share of requests (JSON, tensors as nested lists). A request
answered with an error keeps the error's ``code`` and message (``error_code``, ``error_message``: what the
caller was told). ``caller`` is NULL for an anonymous caller. Indexed for the queries the REST API offers: by
time, by model and time, and by request id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from mlgate.db.base import Base, UTCDateTime

__all__ = ["PredictionRecord"]

BigId = BigInteger().with_variant(Integer(), "sqlite")


class PredictionRecord(Base):
    """One request in the prediction log: model, version, caller, status, latency (ms), batch size,
    request id, shadow or not, and the sampled input/output tensors (JSON).
    """
    __tablename__ = "prediction_log"
    __table_args__ = (Index("ix_prediction_log_model_at", "model", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    caller: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[int] = mapped_column(SmallInteger)
    latency_ms: Mapped[float] = mapped_column(Float)
    batch_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    # none_as_null: an unsampled record stores SQL NULL, not the JSON text 'null' (no encoding per record).
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
