"""Pictures -> input tensors, as an input's ``[inputs.image]`` table declares (``ImagePreprocessing``).

The playground does the same in the browser (``mlgate/web/static/playground.js``); this is the reference
its browser tests compare the page's tensors with. The server uses it too: an input that declares
``[inputs.image]`` also takes encoded pictures (PNG, JPEG, ... one per row) sent as V2 ``BYTES``
(``decode_images``), which become the tensor the model takes exactly as the playground would make it.
"""

from __future__ import annotations

import base64
import binascii
import io
import math

import numpy as np

from mlgate.datatypes import NUMPY_DTYPES
from mlgate.errors import InvalidInput
from mlgate.model.manifest import ImagePreprocessing, TensorSpec

__all__ = ["MAX_IMAGE_PIXELS", "area_weights", "decode_images", "image_to_tensor"]

MAX_IMAGE_PIXELS = 1920 * 1080
"""The largest picture (width x height) an image input decodes; a bigger one is a 400 (scale it down first).
Decoding runs where the request is decoded, so this bounds its time and memory (~50 MB of float64 RGB)."""

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


def decode_images(encoded: np.ndarray, spec: TensorSpec, field: str) -> np.ndarray:
    """Encoded pictures, one per row, as the tensor the image input ``spec`` takes.

    ``encoded``: a BYTES tensor (object array of ``bytes``) of shape ``[batch]`` or ``[batch, 1]``, each element
    a picture file Pillow reads (PNG, JPEG, GIF, BMP, WebP...), raw (the binary tensor extension, or gRPC) or
    base64 (JSON ``data``, whose strings cannot hold raw bytes). Each picture goes through
    ``image_to_tensor`` (RGBA composited on white, as the playground does). Returns ``[batch, *row shape]`` in
    the input's datatype (integers rounded). Raises InvalidInput naming ``field`` for another shape, a row
    that is not a picture, or one over ``MAX_IMAGE_PIXELS``.
    """
    from PIL import Image, UnidentifiedImageError

    image = spec.image
    assert image is not None, "decode_images is for inputs that declare [inputs.image]"
    if encoded.ndim not in (1, 2) or (encoded.ndim == 2 and encoded.shape[1] != 1):
        raise InvalidInput(f"{field}.shape: input '{spec.name}' takes encoded images as BYTES [batch] or "
                           f"[batch, 1], got {list(encoded.shape)}", field=f"{field}.shape")
    row_shape = tuple(spec.shape[1:]) or (image.size,)
    dtype = np.dtype(NUMPY_DTYPES[spec.datatype])
    rows = []
    for i, raw in enumerate(encoded.reshape(-1).tolist()):
        where = f"{field}.data[{i}]"
        try:
            with Image.open(io.BytesIO(_image_bytes(bytes(raw)))) as picture:
                width, height = picture.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise InvalidInput(f"{where}: a {width}x{height} image is over {MAX_IMAGE_PIXELS} pixels; "
                                       "scale it down first", field=f"{field}.data")
                pixels = np.asarray(picture.convert("RGBA"))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InvalidInput(f"{where}: not a readable image for input '{spec.name}' ({type(exc).__name__}); "
                               "send a PNG or JPEG file's bytes (base64 in JSON data)",
                               field=f"{field}.data") from None
        values = image_to_tensor(pixels, image)
        rows.append(values.reshape(row_shape))
    batch = np.stack(rows) if rows else np.zeros((0, *(max(d, 0) for d in row_shape)))
    if dtype.kind in "iu":
        info = np.iinfo(dtype.type)  # type: ignore[type-var]
        batch = np.clip(np.rint(batch), info.min, info.max)
    return batch.astype(dtype)


_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def _image_bytes(raw: bytes) -> bytes:
    """A picture file's bytes, from themselves or from base64 (what JSON ``data`` carries)."""
    if raw.startswith(_MAGIC):
        return raw
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return raw  # neither: let Pillow say it is not an image
