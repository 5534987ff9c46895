"""Memory target: RSS of one model instance (a manifest ``instances = 1`` worker process) against the same
model loaded alone in a bare Python process, both after one prediction.

Usage: python benchmarks/memory.py [MLGATE_EXAMPLES_DIR]
The examples directory defaults to ``mlgate serve``'s (built on first use). For each of ``breast-cancer`` and
``minilm`` it (1) starts a bare ``python -c`` that loads the artifact with its own library (joblib /
SentenceTransformer), predicts once and reports its VmRSS, and (2) serves a repository holding only that
model with ``instances = 1`` (``mlgate serve --workers 1``), predicts once over HTTP and reads the VmRSS of the
worker process (the server's child). Prints one JSON line per model with both figures and their ratio.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BARE = {
    "breast-cancer": (
        "import joblib, numpy as np; from sklearn.datasets import load_breast_cancer; "
        "m = joblib.load({path!r}); m.predict(load_breast_cancer().data[:1])"),
    "minilm": (
        "import os; os.environ['HF_HUB_OFFLINE'] = '1'; from sentence_transformers import SentenceTransformer; "
        "m = SentenceTransformer({path!r}, device='cpu', local_files_only=True); m.encode(['hello world'])"),
}
# The minilm example runs on ONNX Runtime (no PyTorch in its process): its other baseline is the exported graph
# loaded alone in a bare onnxruntime session, with the tokenizer, embedding one sentence.
BARE_ONNX = (
    "import numpy as np, onnxruntime as ort; from tokenizers import Tokenizer; "
    "t = Tokenizer.from_file({tokenizer!r}); e = t.encode('hello world'); "
    "s = ort.InferenceSession({onnx!r}, providers=['CPUExecutionProvider']); "
    "s.run(None, {{'input_ids': np.array([e.ids]), 'attention_mask': np.array([e.attention_mask]), "
    "'token_type_ids': np.array([e.type_ids])}})")
ARTIFACT = {"breast-cancer": "model.joblib", "minilm": "model"}
REQUEST = {
    "breast-cancer": ("/v1/models/breast-cancer:predict", {"instances": [[0.0] * 30]}),
    "minilm": ("/v1/embeddings", {"model": "minilm", "input": "hello world"}),
}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def bare(name: str, model_dir: Path, code: str | None = None) -> float:
    code = code or BARE[name].format(path=str(model_dir / ARTIFACT[name]))
    code += "; print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def served(name: str, model_dir: Path, tmp: Path) -> float:
    repo = tmp / name
    shutil.copytree(model_dir, repo / name, symlinks=True)
    manifest = repo / name / "model.toml"
    manifest.write_text("instances = 1\n" + manifest.read_text())  # a top-level key, before any table
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLGATE_DATA_DIR": str(tmp / "data"), "MLGATE_ACCESS_LOG": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "mlgate", "serve", "-m", str(repo), "--port", str(port),
                             "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        path, body = REQUEST[name]
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.post(f"http://127.0.0.1:{port}{path}", json=body, timeout=30).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"mlgate serve with {name} did not answer")
            time.sleep(0.5)
        workers = children(proc.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one worker process, found {workers}")
        return rss_mib(workers[0])
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    from mlgate.settings import default_examples_dir

    examples = Path(sys.argv[1]) if len(sys.argv) > 1 else default_examples_dir()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("breast-cancer", "minilm"):
            alone, worker = bare(name, examples / name), served(name, examples / name, Path(tmp))
            record = {"kind": "memory", "model": name, "bare_rss_mib": round(alone, 1),
                      "worker_rss_mib": round(worker, 1), "ratio": round(worker / alone, 3)}
            if name == "minilm":
                from mlgate.runtimes.st_onnx import _cache_key, onnx_cache_dir

                artifact = examples / name / ARTIFACT[name]
                onnx = onnx_cache_dir() / _cache_key(artifact.resolve()) / "model.onnx"
                alone_onnx = bare(name, artifact, BARE_ONNX.format(tokenizer=str(artifact / "tokenizer.json"),
                                                                    onnx=str(onnx)))
                record.update(bare_onnx_rss_mib=round(alone_onnx, 1), ratio_onnx=round(worker / alone_onnx, 3))
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
