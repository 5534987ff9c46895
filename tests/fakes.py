"""Tiny real models for the python runtime, written into model directories by the tests."""

from __future__ import annotations

from pathlib import Path

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
