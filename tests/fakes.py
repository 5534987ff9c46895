"""Tiny real models: Python-runtime sources written into model directories by the tests, and fakes that are
real ``Runtime`` subclasses (no files, no framework) for unit tests of the data plane and the registry."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import ModelManifest
from mlgate.runtimes.base import Batch, Runtime

SUM_MODEL = '''
import numpy as np

class Model:
    def load(self):
        self.offset = float((__import__("pathlib").Path(__file__).parent / "offset.txt").read_text())

    def predict(self, batch, parameters):
        x = batch["x"]
        scale = float(parameters.get("scale", 1.0))
        return {"sum": (x.sum(axis=1) + self.offset) * scale}
'''

ERROR_MODEL = '''
class Model:
    def predict(self, batch):
        raise RuntimeError("secret internal detail /srv/models/boom.py line 3")
'''

WRONG_BATCH_MODEL = '''
import numpy as np

class Model:
    def predict(self, batch):
        return {"y": np.zeros(1)}
'''

TEXT_MODEL = '''
import numpy as np

class Model:
    def predict(self, batch):
        words = batch["text"]
        return {"upper": np.array([w.upper() for w in words], dtype=object),
                "length": np.array([len(w) for w in words], dtype=np.int32)}
'''


def write_python_model(root: Path, name: str, source: str, inputs: str, outputs: str, extra: str = "") -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "model.py").write_text(source)
    (directory / "model.toml").write_text(
        f'name = "{name}"\nversion = "1"\nruntime = "python"\nartifact = "model.py"\n{extra}\n{inputs}\n{outputs}\n'
    )
    return directory


def sum_model(root: Path, offset: float = 0.5) -> Path:
    directory = write_python_model(
        root, "sum", SUM_MODEL,
        '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1, 3]\n',
        '[[outputs]]\nname = "sum"\ndatatype = "FP32"\nshape = [-1]\n')
    (directory / "offset.txt").write_text(str(offset))
    return directory

WIDE_MODEL = '''
import numpy as np

class Model:
    def load(self):
        self.calls = []  # rows of each call, for tests that check merging

    def predict(self, batch, parameters):
        x = batch["x"]
        self.calls.append(x.shape[0])
        scale = float(parameters.get("scale", 1.0))
        return {"total": x.sum(axis=1) * scale, "first": x[:, 0].copy(),
                "width": np.full(x.shape[0], x.shape[1], dtype=np.int64)}
'''

GATED_MODEL = '''
import os
import time
from pathlib import Path

HERE = Path(__file__).parent

class Model:
    """Marks each call started (started-<pid>-<first value>), then waits until the file 'gate' exists."""

    def predict(self, batch):
        x = batch["x"]
        (HERE / f"started-{os.getpid()}-{int(x[0])}").touch()
        give_up = time.monotonic() + 60
        while not (HERE / "gate").exists() and time.monotonic() < give_up:
            time.sleep(0.002)
        return {"y": x * 2}
'''

UNPICKLABLE_ERROR_MODEL = '''
class Unpicklable(Exception):
    def __init__(self):
        super().__init__("cannot cross a process boundary")
        self.callback = lambda: None

class Model:
    def predict(self, batch):
        raise Unpicklable()
'''

INVALID_INPUT_MODEL = '''
from mlgate.errors import InvalidInput

class Model:
    def predict(self, batch):
        raise InvalidInput("x must be sorted", field="inputs[x]")
'''


def wide_model(root: Path, extra: str = "") -> Path:
    """Python model over x FP64 [-1, -1]: total = row sums * parameters.scale, first column, width."""
    return write_python_model(
        root, "wide", WIDE_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP64"\nshape = [-1, -1]\n',
        '[[outputs]]\nname = "total"\ndatatype = "FP64"\nshape = [-1]\n'
        '[[outputs]]\nname = "first"\ndatatype = "FP64"\nshape = [-1]\n'
        '[[outputs]]\nname = "width"\ndatatype = "INT64"\nshape = [-1]\n', extra)


def gated_model(root: Path, name: str = "gated", extra: str = "") -> Path:
    """Python model y = 2x over x FP32 [-1] that blocks until ``open_gate`` (see GATED_MODEL)."""
    return write_python_model(root, name, GATED_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                              '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n', extra)


def open_gate(model_dir: Path) -> None:
    (model_dir / "gate").touch()


def started(model_dir: Path) -> list[tuple[int, int]]:
    """(pid, first value) of each call the gated model started."""
    return sorted((int(p.name.split("-")[1]), int(p.name.split("-")[2])) for p in model_dir.glob("started-*"))


# -- fakes as real Runtime subclasses, for unit tests of the data plane and the registry ------------------
# Registered under "fake-*" names by ``fake_runtimes`` (tests/inference/conftest.py), so the registry loads
# them through its real path (runtime_class, load on a worker thread, hooks) from a manifest.

class FakeRuntime(Runtime):
    """Base of the fakes: nothing to read from disk; ``loads`` and ``unloads`` count the calls."""

    name: ClassVar[str] = "fake"
    platform: ClassVar[str] = "fake"

    def load(self) -> None:
        self.loads = getattr(self, "loads", 0) + 1

    def unload(self) -> None:
        self.unloads = getattr(self, "unloads", 0) + 1

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        raise NotImplementedError


class SumRuntime(FakeRuntime):
    """``sum`` = row sums of ``x`` [-1, 3] times ``parameters["scale"]`` (default 1)."""

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        return {"sum": batch["x"].sum(axis=1) * float(parameters.get("scale", 1.0))}


class SlowRuntime(SumRuntime):
    """``SumRuntime`` that blocks until its ``gate`` event is set (at most 30 s); ``started`` is set on entry."""

    def load(self) -> None:
        super().load()
        self.gate = threading.Event()
        self.started = threading.Event()

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        self.started.set()
        self.gate.wait(30)
        return super().predict(batch, parameters)


class ErrorRuntime(FakeRuntime):
    """Raises an exception whose message must never reach a caller."""

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        raise RuntimeError("secret internal detail /srv/models/boom.py line 3")


class WrongBatchRuntime(FakeRuntime):
    """Answers one row whatever the batch size (a model bug the data plane must catch)."""

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        return {"sum": np.zeros(1)}


class FailingLoadRuntime(FakeRuntime):
    def load(self) -> None:
        raise ModelLoadError("the artifact is corrupt")


FAKE_RUNTIMES = {
    "fake-sum": "tests.fakes:SumRuntime",
    "fake-slow": "tests.fakes:SlowRuntime",
    "fake-error": "tests.fakes:ErrorRuntime",
    "fake-wrong-batch": "tests.fakes:WrongBatchRuntime",
    "fake-failing-load": "tests.fakes:FailingLoadRuntime",
}
"""Runtime names of the fakes, as ``mlgate.runtimes.RUNTIMES`` entries (module:class)."""


def fake_manifest(name: str = "sum", runtime: str = "fake-sum", version: str = "1", **fields: Any) -> ModelManifest:
    """A manifest for a fake: input ``x`` FP64 [-1, 3], output ``sum`` FP64 [-1]."""
    return ModelManifest.model_validate({
        "name": name, "version": version, "runtime": runtime, "artifact": "none",
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}],
        "outputs": [{"name": "sum", "datatype": "FP64", "shape": [-1]}], **fields})
