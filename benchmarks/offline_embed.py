"""Offline limit of mlgate's own embeddings runtime: ``SentenceTransformersRuntime.predict`` called in-process.

Usage: [BACKEND=torch|onnxruntime] python benchmarks/offline_embed.py MODEL_DIR [seconds_per_point] [batch sizes...]
MODEL_DIR is a sentence-transformers directory (the harness's $BENCH_TMP/models/minilm). Prints one JSON line
per batch size: sentences/s through the runtime (tokenize, encode, normalise, count tokens) with the process's
default threads (torch's; for onnxruntime its intra-op threads, OMP_NUM_THREADS or else the CPUs), on the
harness's 200 sentences. Compare with ../shared/bench/tools/offline_encode.py
(bare ``SentenceTransformer.encode``) measured in the same run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "tools"
sys.path.insert(0, str(BENCH))

from sentences import sentences  # noqa: E402  (the harness's 200 fixed sentences)

from mlgate.model.manifest import read_manifest  # noqa: E402
from mlgate.runtimes.sentence_transformers import SentenceTransformersRuntime  # noqa: E402

BACKEND = os.environ.get("BACKEND", "torch")


def main() -> None:
    model_dir = Path(sys.argv[1])
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    sizes = [int(x) for x in sys.argv[3:]] or [32, 64]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "minilm"
        root.mkdir()
        (root / "model").symlink_to(model_dir.resolve())
        (root / "model.toml").write_text('name = "minilm"\nversion = "1"\nruntime = "sentence-transformers"\n'
                                         'artifact = "model"\n[parameters]\nnormalize = true\n'
                                         f'backend = "{BACKEND}"\n')
        runtime = SentenceTransformersRuntime(read_manifest(root), root)
        runtime.load()
        if runtime._onnx is not None:  # the intra-op threads the runtime gave its ONNX Runtime session
            threads = runtime._onnx.session.get_session_options().intra_op_num_threads
        else:
            import torch

            threads = torch.get_num_threads()
        text = sentences()
        runtime.predict({"text": np.array(text[:64], dtype=object)}, {})  # warm-up
        for size in sizes:
            n = i = 0
            start = time.perf_counter()
            while time.perf_counter() - start < secs:
                batch = np.array([text[(i + k) % len(text)] for k in range(size)], dtype=object)
                i += size
                runtime.predict({"text": batch}, {})
                n += size
            elapsed = time.perf_counter() - start
            print(json.dumps({"kind": "offline-mlgate", "runtime": "sentence-transformers", "backend": BACKEND,
                              "batch_size": size,
                              "sent_per_s": round(n / elapsed, 1), "threads": threads}),
                  flush=True)


if __name__ == "__main__":
    main()
