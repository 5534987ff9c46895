"""What the prediction log is told: every request the data plane served, shadow copies, and refusals.

``CallRecorder`` turns a data plane ``Call`` into a ``Prediction`` of the prediction log
(``mlgate.predlog.writer``): model, version, caller, status, latency (ms), batch size, request id, and the
input and output tensors when the model's sample rate keeps them (a shadow's outputs always), and the error's
code and message when the request was answered with one. Refusals, the
requests answered with an error before the data plane served them (a 429 on their rows, a body that does
not decode), are recorded by the protocol layer that refused them through ``refused``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mlgate.errors import MlgateError
from mlgate.inference.dataplane import Call
from mlgate.logs import REQUEST_ID
from mlgate.predlog.writer import Prediction, PredictionLog

__all__ = ["CallRecorder"]


class CallRecorder:
    """Records calls into ``predlog``; its methods never block (the writer buffers and flushes in batches)."""

    def __init__(self, predlog: PredictionLog) -> None:
        self.predlog = predlog

    def observe(self, call: Call, status: int, latency_ms: float) -> None:
        """Data plane observer: one served request."""
        self._record(call, status, latency_ms, shadow=False)

    def shadow(self, call: Call, status: int, latency_ms: float) -> None:
        """A shadow copy's answer (``mlgate.catalog.shadow``), with its outputs."""
        self._record(call, status, latency_ms, shadow=True)

    def _record(self, call: Call, status: int, latency_ms: float, *, shadow: bool) -> None:
        keep = self.predlog.wants_tensors(call.handle.name)
        self.predlog.record(Prediction(
            at=datetime.now(UTC), model=call.handle.name, version=call.handle.version, caller=call.caller,
            status=status, latency_ms=round(latency_ms, 3), batch_size=call.batch_size, request_id=REQUEST_ID.get(),
            shadow=shadow, inputs=call.inputs if keep else None,
            outputs=call.outputs if (keep or shadow) else None,
            error_code=call.error.code if call.error is not None else None,
            error_message=call.error.message if call.error is not None else None))

    def refused(self, model: str, caller: str | None, error: MlgateError, latency_ms: float,
                request_id: str | None) -> None:
        """A request on ``model`` answered with ``error`` before the data plane served it."""
        self.predlog.record(Prediction(at=datetime.now(UTC), model=model, version=None, caller=caller,
                                       status=int(error.status), latency_ms=round(latency_ms, 3), batch_size=None,
                                       request_id=request_id, error_code=error.code, error_message=error.message))
