"""Hugging Face ``transformers`` pipelines from a local directory (``save_pretrained`` of the model and its
tokenizer or image processor). Never downloads: the Hub is switched off (``HF_HUB_OFFLINE=1``) and a
directory without the files the pipeline needs leaves the model not ready with the library's reason.

``parameters.task``: ``text-classification``, ``image-classification`` or ``feature-extraction``; when
absent it is read from ``config.json``'s ``architectures`` (``...ForSequenceClassification`` -> text,
``...ForImageClassification`` -> image, anything else -> feature extraction). Signatures, when the manifest
leaves them out:

- ``text-classification``: ``text`` BYTES ``[-1]`` (UTF-8, a text per row) -> ``label`` BYTES ``[-1]`` (the
  best label), ``score`` FP32 ``[-1]`` (its probability) and ``scores`` FP32 ``[-1, n_labels]`` (every label's,
  in the order of the model's ``id2label``, which is also the manifest's ``labels`` when it gives none);
- ``image-classification``: ``image`` BYTES ``[-1]`` (an encoded PNG, JPEG... per row; or declare a UINT8
  ``[-1, H, W, 3]`` input to send pixels as a tensor) -> the same three outputs;
- ``feature-extraction``: ``text`` BYTES ``[-1]`` -> ``embedding`` FP32 ``[-1, hidden]``, the mean of the last
  hidden state over the text's tokens (the pipeline's per-token output of the text alone, averaged; padding
  in a batch is masked out).

Manifest: ``device`` (``cpu``, ``cuda``, ``cuda:N``), ``parameters.batch_size`` (rows per forward pass,
default 8), ``parameters.components`` (a folder of the model directory holding ``tokenizer/`` or
``image_processor/`` apart from the model, as MLflow's transformers flavor saves them). Needs the
``transformers`` extra (on PyTorch).
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlgate.errors import InvalidInput, ModelLoadError
from mlgate.model.manifest import TensorSpec
from mlgate.runtimes.base import Batch, Runtime
from mlgate.runtimes.support import positive_int, require, torch_device

__all__ = ["TransformersRuntime"]

TASKS = ("text-classification", "image-classification", "feature-extraction")


def _task_of(config: Mapping[str, Any]) -> str:
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "text-classification"
    if any(a.endswith("ForImageClassification") for a in architectures):
        return "image-classification"
    return "feature-extraction"


class TransformersRuntime(Runtime):
    """``runtime = "transformers"``: a Hugging Face pipeline from a local ``save_pretrained`` directory
    (text-classification, image-classification, feature-extraction); never downloads.
    """
    name = "transformers"
    platform = "transformers"
    cuda = True

    def load(self) -> None:
        directory = self.model_dir / self.manifest.artifact
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise ModelLoadError(f"artifact {self.manifest.artifact!r} in {self.model_dir} is not a saved "
                                 "transformers model (a directory holding config.json, from save_pretrained)")
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{config_path}: not readable JSON: {exc}") from exc
        task = str(self.manifest.parameters.get("task") or _task_of(config))
        if task not in TASKS:
            raise ModelLoadError(f"parameters.task must be one of {', '.join(TASKS)}, got {task!r}")
        self.task = task
        self._batch_size = positive_int(self.manifest.parameters, "batch_size") or 8
        # transformers 5 makes an empty tokenizer when the directory has none, which would answer nonsense.
        image = task == "image-classification"
        files, what = ((("preprocessor_config.json",), "image_processor") if image
                       else (("tokenizer.json", "tokenizer_config.json"), "tokenizer"))
        components = self.manifest.parameters.get("components")  # MLflow keeps them apart from the model
        part_dir = self.model_dir / str(components) / what if components else directory
        if not any((part_dir / name).is_file() for name in files):
            raise ModelLoadError(f"{part_dir.name} holds no {what.replace('_', ' ')} for {task} "
                                 f"({' or '.join(files)}; save it there with save_pretrained; nothing is downloaded)")
        # Local files only: set before huggingface_hub is first imported.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        device = torch_device(self.manifest.device)
        transformers = require("transformers", "transformers")
        if task == "image-classification":
            require("PIL", "transformers")
        transformers.utils.logging.disable_progress_bar()
        try:
            self.pipe = transformers.pipeline(task, model=str(directory), device=device, **{what: str(part_dir)})
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # the library's errors for missing files
            raise ModelLoadError(f"transformers could not load {directory.name} for {task}: {exc}") from exc
        self._lock = threading.Lock()
        id2label = self.pipe.model.config.id2label or {}
        self.label_names = [str(id2label[i]) for i in sorted(id2label)]
        if not self.inputs:
            name = "image" if task == "image-classification" else "text"
            self.inputs = (TensorSpec(name=name, datatype="BYTES", shape=(-1,)),)
        if not self.outputs:
            if task == "feature-extraction":
                width = int(self.pipe.model.config.hidden_size)
                self.outputs = (TensorSpec(name="embedding", datatype="FP32", shape=(-1, width)),)
            else:
                self.outputs = (TensorSpec(name="label", datatype="BYTES", shape=(-1,)),
                                TensorSpec(name="score", datatype="FP32", shape=(-1,)),
                                TensorSpec(name="scores", datatype="FP32", shape=(-1, len(self.label_names))))
        if len(self.inputs) != 1:
            raise ModelLoadError(f"a {task} pipeline takes one input")
        self._input = self.inputs[0]

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """One row per text or image -> the task's outputs (see the module docstring). 400 for a row that is
        not UTF-8 text or not a decodable image."""
        rows = batch[self._input.name]
        if self.task == "image-classification":
            items: list[Any] = [_image(row, i) for i, row in enumerate(rows)]
        else:
            items = [_text(value, i) for i, value in enumerate(rows.reshape(-1).tolist())]
        with self._lock:
            if self.task == "feature-extraction":
                return {"embedding": self._embed(items)}
            result = self.pipe(items, top_k=None, batch_size=self._batch_size)
        index = {label: i for i, label in enumerate(self.label_names)}
        scores = np.zeros((len(items), len(self.label_names)), dtype=np.float32)
        for row, answers in enumerate(result):
            for answer in answers:
                scores[row, index[str(answer["label"])]] = answer["score"]
        best = scores.argmax(axis=1)
        labels = np.array([self.label_names[i].encode() for i in best], dtype=object)
        return {"label": labels, "score": scores[np.arange(len(items)), best], "scores": scores}

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Mean of the last hidden state over each text's tokens. The pipeline would pad a batch and average
        the padding too; here the attention mask leaves it out, so a row's answer does not depend on the
        others in its batch."""
        import torch

        chunks = []
        for start in range(0, len(texts), self._batch_size):
            encoded = self.pipe.tokenizer(texts[start:start + self._batch_size], padding=True, truncation=True,
                                          return_tensors="pt").to(self.pipe.device)
            with torch.inference_mode():
                hidden = self.pipe.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            chunks.append(((hidden * mask).sum(dim=1) / mask.sum(dim=1)).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, int(self.pipe.model.config.hidden_size)), np.float32)

    def unload(self) -> None:
        self.__dict__.pop("pipe", None)


def _text(value: object, row: int) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"row {row} of the text input is not valid UTF-8", field="inputs") from None
    if isinstance(value, str):
        return value
    raise InvalidInput(f"row {row} of the text input is not a string", field="inputs")


def _image(value: Any, row: int) -> Any:
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        if value.ndim != 3 or value.shape[-1] not in (1, 3):
            raise InvalidInput(f"row {row} of the image input must be [height, width, 3] pixels", field="inputs")
        return Image.fromarray(value if value.shape[-1] == 3 else value[..., 0]).convert("RGB")
    data = value.item() if isinstance(value, np.ndarray) else value
    if not isinstance(data, bytes):
        raise InvalidInput(f"row {row} of the image input is not an encoded image", field="inputs")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(f"row {row} of the image input is not an image PIL can read ({exc})",
                           field="inputs") from None
