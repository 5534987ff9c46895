"""Memory target: RSS of one model instance (a manifest ``instances = 1`` worker process) against the same
model loaded alone in a bare Python process, both after one prediction.

Usage: python benchmarks/memory.py [MLGATE_EXAMPLES_DIR]
       python benchmarks/memory.py --runtimes   # the framework runtimes (issue 12), models built in a scratch dir
The examples directory defaults to ``mlgate serve``'s (built on first use). For each of ``breast-cancer`` and
``minilm`` it (1) starts a bare ``python -c`` that loads the artifact with its own library (joblib /
SentenceTransformer), predicts once and reports its VmRSS, and (2) serves a repository holding only that
model with ``instances = 1`` (``mlgate serve --workers 1``), predicts once over HTTP and reads the VmRSS of the
worker process (the server's child). Prints one JSON line per model with both figures and their ratio.

``--runtimes`` does the same for one model per framework runtime, built by this script from ``load_digits``
(8x8 digits, 64 features) with the framework itself: ``digits-cnn`` (keras on PyTorch, the example), an MLP as a
``torch.export`` program (torch), a ``tf.Module`` SavedModel (tensorflow), ``XGBClassifier`` (xgboost) and
``LGBMClassifier`` (lightgbm). Each bare process imports only its framework (and numpy), loads the file as
the framework's docs say and predicts one row.
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
from typing import Any

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


V2_DIGIT = {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
RUNTIME_BARE = {
    "digits-cnn": ("import os; os.environ['KERAS_BACKEND'] = 'torch'; import keras, numpy as np; "
                   "m = keras.saving.load_model({path!r}); m.predict_on_batch(np.zeros((1, 8, 8, 1), 'float32'))"),
    "torch-mlp": ("import torch; m = torch.export.load({path!r}).module(); "
                  "torch.inference_mode().__enter__(); m(torch.zeros(1, 64))"),
    "tf-module": ("import tensorflow as tf; m = tf.saved_model.load({path!r}); "
                  "m.signatures['serving_default'](x=tf.zeros((1, 64)))"),
    "xgb-digits": ("import numpy as np, xgboost as xgb; b = xgb.Booster(); b.load_model({path!r}); "
                   "b.predict(xgb.DMatrix(np.zeros((1, 64), 'float32')))"),
    "lgb-digits": ("import numpy as np, lightgbm as lgb; b = lgb.Booster(model_file={path!r}); "
                   "b.predict(np.zeros((1, 64)))"),
}
RUNTIME_MODELS = {  # name -> (runtime, artifact, V2 request)
    "digits-cnn": ("keras", "model.keras", {"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32",
                                                        "data": [0.0] * 64}]}),
    "torch-mlp": ("torch", "model.pt2", {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                                     "data": [0.0] * 64}]}),
    "tf-module": ("tensorflow", "saved", {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32",
                                                      "data": [0.0] * 64}]}),
    "xgb-digits": ("xgboost", "model.ubj", V2_DIGIT),
    "lgb-digits": ("lightgbm", "model.txt", V2_DIGIT),
}
BUILD_TF = """
import sys, tensorflow as tf
class M(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.random.stateless_normal((64, 10), seed=(1, 2)))
    @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x")])
    def __call__(self, x):
        return {"scores": tf.nn.softmax(x @ self.w)}
m = M()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.__call__})
"""


def build_runtime_models(root: Path) -> None:
    """One model directory per framework runtime under ``root`` (see the module)."""
    import numpy as np
    from sklearn.datasets import load_digits

    from mlgate.model.examples import build_examples

    build_examples(root, names=["digits-cnn"], open_demo=True)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    for name, (runtime, artifact, _) in RUNTIME_MODELS.items():
        directory = root / name
        directory.mkdir(exist_ok=True)
        if name != "digits-cnn":
            (directory / "model.toml").write_text(f'name = "{name}"\nruntime = "{runtime}"\nartifact = "{artifact}"\n'
                                                  '[access]\nanonymous = true\n')
    import torch

    mlp = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).eval()
    program = torch.export.export(mlp, (torch.zeros(2, 64),), dynamic_shapes={"input": {0: torch.export.Dim("batch")}})
    torch.export.save(program, root / "torch-mlp" / "model.pt2")
    subprocess.run([sys.executable, "-c", BUILD_TF, str(root / "tf-module" / "saved")], check=True,
                   capture_output=True)
    import lightgbm
    import xgboost

    xgboost.XGBClassifier(n_estimators=50, max_depth=4).fit(x, y).save_model(root / "xgb-digits" / "model.ubj")
    lgbm = lightgbm.LGBMClassifier(n_estimators=50, verbose=-1).fit(x, y)
    lgbm.booster_.save_model(root / "lgb-digits" / "model.txt")


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


def served(name: str, model_dir: Path, tmp: Path, request: tuple[str, Any] | None = None) -> float:
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
        path, body = request or REQUEST[name]
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


def runtimes() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        build_runtime_models(models)
        for name, (runtime, artifact, body) in RUNTIME_MODELS.items():
            alone = bare(name, models / name, RUNTIME_BARE[name].format(path=str(models / name / artifact)))
            worker = served(name, models / name, Path(tmp), (f"/v2/models/{name}/infer", body))
            print(json.dumps({"kind": "memory", "model": name, "runtime": runtime, "bare_rss_mib": round(alone, 1),
                              "worker_rss_mib": round(worker, 1), "ratio": round(worker / alone, 3)}), flush=True)


def main() -> None:
    from mlgate.settings import default_examples_dir

    if sys.argv[1:] == ["--runtimes"]:
        runtimes()
        return
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
