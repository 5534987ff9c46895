"""`mlgate serve --workers 2`: every HTTP process serves gRPC on the one port, and tritonclient.grpc (the
synchronous client) gets the in-process model's answers from it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as triton
from sklearn.datasets import load_digits

from tests.processes import free_port, serve_process

ROWS = 20


def test_every_worker_process_serves_grpc(examples_repo: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    digits = load_digits().data[:ROWS].astype(np.float32)
    expected, _ = ort.InferenceSession(str(examples_repo / "digits" / "model.onnx"),
                                       providers=["CPUExecutionProvider"]).run(None, {"X": digits})
    with serve_process(examples_repo, log, {"MLGATE_WORKERS": "2", "MLGATE_GRPC_PORT": str(port)}):
        # The server is ready when one process answers; the other may still be loading its models.
        deadline = time.monotonic() + 90
        while len(listening := _grpc_pids(log)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(listening) == 2, log.read_text()[-3000:]
        for _ in range(4):  # new connections: the kernel spreads them over the processes
            client = triton.InferenceServerClient(f"127.0.0.1:{port}")
            pixels = triton.InferInput("X", [ROWS, 64], "FP32")
            pixels.set_data_from_numpy(digits)
            np.testing.assert_array_equal(client.infer("digits", [pixels]).as_numpy("label"), expected)
            client.close()


def _grpc_pids(log: Path) -> set[int]:
    """The processes that logged "grpc listening"."""
    return {json.loads(line)["pid"] for line in log.read_text().splitlines()
            if line.startswith("{") and '"grpc listening"' in line}
