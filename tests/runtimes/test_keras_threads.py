"""The keras runtime's ``parameters.threads``: the backend's intra-op threads for the process serving the model
(PyTorch here), and a 400-style reason naming the parameter when it is not a positive integer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import read_manifest
from mlgate.runtimes.keras import KerasRuntime

os.environ.setdefault("KERAS_BACKEND", "torch")  # this test process's Keras runs on PyTorch, as the server's


@pytest.fixture
def torch_threads() -> Iterator[int]:
    """The process's PyTorch thread count, restored after the test."""
    import torch

    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def _model(directory: Path, threads: object) -> Path:
    import keras

    directory.mkdir()
    inputs = keras.Input((3,), name="x")
    keras.Model(inputs, keras.layers.Dense(2, name="y")(inputs)).save(directory / "model.keras")
    (directory / "model.toml").write_text(f'name = "m"\nruntime = "keras"\nartifact = "model.keras"\n'
                                          f"[parameters]\nthreads = {threads}\n")
    return directory


def test_threads_sets_the_backend_thread_count(tmp_path: Path, torch_threads: int) -> None:
    import torch

    torch.set_num_threads(2)
    directory = _model(tmp_path / "m", 1)
    KerasRuntime(read_manifest(directory), directory).load()
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("threads", ["0", '"two"'])
def test_threads_must_be_a_positive_integer(tmp_path: Path, torch_threads: int, threads: str) -> None:
    directory = _model(tmp_path / "m", threads)
    with pytest.raises(ModelLoadError, match="parameters.threads must be a positive integer"):
        KerasRuntime(read_manifest(directory), directory).load()
