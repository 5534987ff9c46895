"""The torch runtime: a network trained on real data, saved as a torch.export program and as TorchScript,
served through tritonclient and V1 with the answers PyTorch gives in this process."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from tests.processes import serve_process
from tests.runtimes.serving import assert_bad_inputs_refused, load_failures, triton_infer, triton_metadata, v1_predict

SIGNATURE = '''
[[inputs]]
name = "features"
datatype = "FP32"
shape = [-1, 30]

[[outputs]]
name = "logits"
datatype = "FP32"
shape = [-1, 2]

[[outputs]]
name = "label"
datatype = "INT64"
shape = [-1]
'''


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(features)
        return logits, logits.argmax(dim=1)


def _rows() -> np.ndarray:
    data = load_breast_cancer()
    return StandardScaler().fit_transform(data.data).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> Classifier:
    """Trained on load_breast_cancer (standardised) for 60 full-batch Adam steps: ~97 % training accuracy."""
    torch.manual_seed(0)
    x, y = torch.from_numpy(_rows()), torch.from_numpy(load_breast_cancer().target)
    net = Classifier()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x)[0], y).backward()
        optimizer.step()
    net.eval()
    assert (net(x)[1] == y).float().mean() > 0.95
    return net


def _write(root: Path, name: str, artifact: str, extra: str = "") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "model.toml").write_text(f'name = "{name}"\nruntime = "torch"\nartifact = "{artifact}"\n{extra}')
    return directory / artifact


@pytest.fixture(scope="module")
def repo(model: Classifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("torch-repo")
    example = (torch.from_numpy(_rows()[:4]),)
    program = torch.export.export(model, example, dynamic_shapes={"features": {0: torch.export.Dim("batch")}})
    torch.export.save(program, _write(root, "exported", "model.pt2", "[parameters]\nthreads = 1\n"))
    with warnings.catch_warnings():  # PyTorch 2.13 deprecates TorchScript, which users still have files of
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
    scripted.save(_write(root, "scripted", "model.pt", SIGNATURE))
    scripted.save(_write(root, "scripted-unsigned", "model.pt"))  # not ready: no signature
    _write(root, "corrupt", "model.pt2").write_bytes(b"not a program")
    torch.export.save(program, _write(root, "on-cuda", "model.pt2", 'device = "cuda"\n'))
    return root


@pytest.fixture(scope="module")
def server(repo: Path, server_log: Path) -> Iterator[str]:
    with serve_process(repo, server_log) as url:
        yield url


def test_exported_program_signature_and_answers(server: str, model: Classifier) -> None:
    rows = _rows()[:25]
    logits, labels = (t.detach().numpy() for t in model(torch.from_numpy(rows)))
    metadata = triton_metadata(server, "exported")
    assert metadata["platform"] == "pytorch_libtorch"
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}]
    assert metadata["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1, 2]},
                                   {"name": "output-1", "datatype": "INT64", "shape": [-1]}]
    got = triton_infer(server, "exported", {"features": rows}, ["output-0", "output-1"])
    np.testing.assert_allclose(got["output-0"], logits, atol=1e-5)
    np.testing.assert_array_equal(got["output-1"], labels)
    v1 = v1_predict(server, "exported", rows[:5].tolist())
    np.testing.assert_allclose([p["output-0"] for p in v1], logits[:5], atol=1e-5)
    assert [p["output-1"] for p in v1] == labels[:5].tolist()
    assert_bad_inputs_refused(server, "exported", {"features": rows[:2]})


def test_torchscript_with_the_manifest_signature(server: str, model: Classifier) -> None:
    rows = _rows()[100:120]
    logits, labels = (t.detach().numpy() for t in model(torch.from_numpy(rows)))
    got = triton_infer(server, "scripted", {"features": rows}, ["logits", "label"], binary=False)
    np.testing.assert_allclose(got["logits"], logits, atol=1e-5)
    np.testing.assert_array_equal(got["label"], labels)
    assert v1_predict(server, "scripted", rows[:3].tolist())[0]["label"] == labels[0]


def test_bad_artifacts_and_missing_devices_leave_only_that_model_not_ready(server: str, server_log: Path) -> None:
    import httpx

    failures = load_failures(server_log)
    assert "records no dtypes or shapes" in failures.pop("scripted-unsigned")
    assert "torch.export.load could not read model.pt2" in failures.pop("corrupt")
    if torch.cuda.is_available():  # a GPU machine: the model runs there
        assert httpx.get(f"http://{server}/v2/models/on-cuda/ready", timeout=10).status_code == 200
    else:
        assert "PyTorch sees no CUDA device" in failures.pop("on-cuda")
        assert httpx.get(f"http://{server}/v2/models/on-cuda/ready", timeout=10).status_code != 200
    assert failures == {}
    assert httpx.get(f"http://{server}/v2/health/ready", timeout=10).status_code == 200
