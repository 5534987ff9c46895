"""Pictures -> input tensors, as an input's ``[inputs.image]`` table declares (``ImagePreprocessing``).

The playground does the same in the browser (``mlgate/web/static/playground.js``); this is the reference
its browser tests compare the page's tensors with, and what a server-side image input would use.
"""

from __future__ import annotations

import math

import numpy as np

from mlgate.model.manifest import ImagePreprocessing

__all__ = ["area_weights", "image_to_tensor"]

_LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma weights for R, G, B (what Pillow's ``convert("L")`` uses)."""


def area_weights(src: int, dst: int) -> np.ndarray:
    """The ``[dst, src]`` matrix of an area-averaging resize along one axis.

    Output pixel ``i`` covers source span ``[i * src / dst, (i + 1) * src / dst)``; each source pixel
    weighs by how much of it lies in that span, and every row sums to 1. Raises ValueError for sizes < 1.
    """
    if src < 1 or dst < 1:
        raise ValueError(f"sizes must be >= 1, got {src} -> {dst}")
    scale = src / dst
    weights = np.zeros((dst, src))
    for i in range(dst):
        start, end = i * scale, (i + 1) * scale
        for j in range(math.floor(start), min(math.ceil(end), src)):
            weights[i, j] = min(end, j + 1) - max(start, j)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights


def image_to_tensor(pixels: np.ndarray, spec: ImagePreprocessing) -> np.ndarray:
    """One picture as the flat float64 values ``spec`` describes (``spec.size`` of them).

    ``pixels``: uint8 ``[H, W]`` (grayscale), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA, composited on
    white). Returns ``[spec.size]`` in ``spec.layout`` order; reshape it to the input's row shape.
    Raises ValueError for another shape.
    """
    px = np.asarray(pixels, dtype=np.float64)
    if px.ndim == 2:
        px = np.repeat(px[..., None], 3, axis=2)
    if px.ndim != 3 or px.shape[2] not in (3, 4) or px.shape[0] < 1 or px.shape[1] < 1:
        raise ValueError(f"expected pixels [H, W], [H, W, 3] or [H, W, 4], got {list(px.shape)}")
    if px.shape[2] == 4:
        alpha = px[..., 3:] / 255.0
        px = px[..., :3] * alpha + 255.0 * (1.0 - alpha)
    if spec.color == "grayscale":
        px = (px @ _LUMA)[..., None]
    rows = area_weights(px.shape[0], spec.height)
    cols = area_weights(px.shape[1], spec.width)
    resized = np.einsum("ih,hwc,jw->ijc", rows, px, cols)
    intensity = resized / 255.0
    if spec.invert:
        intensity = 1.0 - intensity
    low, high = spec.value_range
    values = low + intensity * (high - low)
    if spec.layout == "CHW":
        values = values.transpose(2, 0, 1)
    flat: np.ndarray = values.reshape(-1)
    return flat
