"""Image preprocessing: the manifest's ``[inputs.image]`` table and the reference picture -> tensor code."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_digits

from mlgate.codecs.images import area_weights, decode_images, image_to_tensor
from mlgate.errors import InvalidInput, ModelLoadError
from mlgate.model.manifest import ImagePreprocessing, TensorSpec, read_manifest

DIGITS = ImagePreprocessing(width=8, height=8, value_range=(0.0, 16.0), invert=True)


def digit_picture(values: np.ndarray, scale: int) -> np.ndarray:
    """An 8x8 load_digits image (0-16, ink high) as dark ink on white uint8 pixels, blown up ``scale`` times."""
    gray = np.round(255 - values * 255 / 16).astype(np.uint8)
    return np.kron(gray, np.ones((scale, scale), dtype=np.uint8))


def test_area_weights_rows_sum_to_one_and_cover_the_source() -> None:
    weights = area_weights(64, 8)
    assert weights.shape == (8, 64)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert np.count_nonzero(weights[0]) == 8 and weights[0, :8].tolist() == [0.125] * 8
    # A non-integer factor shares the boundary pixel: 5 -> 2 gives [1, 1, .5] and [.5, 1, 1] (over 2.5).
    np.testing.assert_allclose(area_weights(5, 2), [[0.4, 0.4, 0.2, 0, 0], [0, 0, 0.2, 0.4, 0.4]])
    # Enlarging copies the nearest source pixel.
    np.testing.assert_allclose(area_weights(2, 4), [[1, 0], [1, 0], [0, 1], [0, 1]])
    with pytest.raises(ValueError):
        area_weights(0, 8)


def test_digit_pictures_give_back_the_data_set_values_and_class(examples_repo: Path) -> None:
    digits = load_digits()
    session = ort.InferenceSession(str(examples_repo / "digits" / "model.onnx"), providers=["CPUExecutionProvider"])
    for index in range(20):
        values = image_to_tensor(digit_picture(digits.images[index], 7), DIGITS)
        # 8-bit gray levels hold 0-16 to within half a level: 16 / 255 / 2.
        np.testing.assert_allclose(values, digits.data[index], atol=16 / 255 / 2 + 1e-9)
        from_picture = session.run(["label"], {"X": values[None].astype(np.float32)})[0]
        from_data = session.run(["label"], {"X": digits.data[index : index + 1].astype(np.float32)})[0]
        assert from_picture.tolist() == from_data.tolist()


def test_rgba_transparency_is_white_and_layouts_order_the_channels() -> None:
    pixels = np.zeros((2, 2, 4), dtype=np.uint8)
    pixels[0, 0] = [255, 0, 0, 255]  # red
    pixels[0, 1] = [0, 0, 0, 0]  # transparent: white
    pixels[1, 0] = [0, 0, 255, 255]  # blue
    pixels[1, 1] = [0, 0, 0, 255]  # black
    hwc = image_to_tensor(pixels, ImagePreprocessing(width=2, height=2, color="rgb"))
    assert hwc.tolist() == [1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0]
    chw = image_to_tensor(pixels, ImagePreprocessing(width=2, height=2, color="rgb", layout="CHW"))
    assert chw.tolist() == [1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0]
    gray = image_to_tensor(pixels, ImagePreprocessing(width=1, height=1, value_range=(-1.0, 1.0)))
    expected = (0.299 + 1.0 + 0.114 + 0.0) / 4
    np.testing.assert_allclose(gray, [-1 + 2 * expected])
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        image_to_tensor(np.zeros((2, 2, 2), dtype=np.uint8), DIGITS)


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "model.toml").write_text('name = "m"\nruntime = "onnx"\nartifact = "m.onnx"\n' + body)
    return tmp_path


def test_manifest_reads_the_image_table(tmp_path: Path) -> None:
    manifest = read_manifest(_write(tmp_path, """
[[inputs]]
name = "X"
datatype = "FP32"
shape = [-1, 64]
[inputs.image]
width = 8
height = 8
value_range = [0.0, 16.0]
invert = true
"""))
    assert manifest.inputs[0].image == DIGITS


@pytest.mark.parametrize(("table", "message"), [
    ('shape = [-1, 60]\n[inputs.image]\nwidth = 8\nheight = 8', "8x8x1 = 64 values do not fit a row of shape [60]"),
    ('shape = [-1, 64]\n[inputs.image]\nwidth = 8\nheight = 8\ncolor = "cmyk"', "inputs.0.image.color"),
    ('shape = [-1, 64]\n[inputs.image]\nwidth = 0\nheight = 8', "inputs.0.image.width"),
    ('shape = [-1, 64]\n[inputs.image]\nwidth = 8\nheight = 8\nvalue_range = [0, nan]', "inputs.0.image.value_range"),
    ('shape = [-1, 64]\n[inputs.image]\nwidth = 8\nheight = 8\nsize = 3', "inputs.0.image.size"),
])
def test_bad_image_tables_name_the_field(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_manifest(_write(tmp_path, f'[[inputs]]\nname = "X"\ndatatype = "FP32"\n{table}\n'))


def test_a_bytes_input_cannot_be_an_image(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="BYTES input cannot hold an image"):
        read_manifest(_write(tmp_path, '[[inputs]]\nname = "X"\ndatatype = "BYTES"\nshape = [-1, 64]\n'
                                       '[inputs.image]\nwidth = 8\nheight = 8\n'))


def test_the_digits_example_declares_its_preprocessing(examples_repo: Path) -> None:
    manifest = read_manifest(examples_repo / "digits")
    assert manifest.inputs[0].image == DIGITS


def _spec(datatype: str = "FP32", shape: tuple[int, ...] = (-1, 2, 2, 1)) -> TensorSpec:
    image = ImagePreprocessing(width=2, height=2, color="grayscale", value_range=(0.0, 255.0), invert=False)
    return TensorSpec(name="image", datatype=datatype, shape=shape, image=image)


def _encoded(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def test_pictures_sent_as_bytes_become_the_declared_tensor() -> None:
    """A 4x4 PNG of four gray quadrants, raw and base64, becomes the 2x2 input; a UINT8 input gets integers."""
    pixels = np.repeat(np.repeat(np.array([[10, 60], [200, 250]], np.uint8), 2, axis=0), 2, axis=1)
    png = _encoded(pixels)
    rows = np.array([png, base64.b64encode(png)], dtype=object)
    got = decode_images(rows, _spec(), "inputs[0]")
    assert got.dtype == np.float32 and got.shape == (2, 2, 2, 1)
    np.testing.assert_allclose(got[..., 0], [[[10, 60], [200, 250]]] * 2, atol=1e-3)
    as_uint8 = decode_images(rows[:1, None], _spec("UINT8", (-1, 4)), "inputs[0]")
    assert as_uint8.dtype == np.uint8 and as_uint8.tolist() == [[10, 60, 200, 250]]


@pytest.mark.parametrize(("rows", "field", "says"), [
    (np.array([b"not a picture"], dtype=object), "inputs[0].data", "inputs[0].data[0]: not a readable image"),
    (np.array([[b"a", b"b"]], dtype=object), "inputs[0].shape", "takes encoded images as BYTES [batch]"),
    (np.array([_encoded(np.zeros((1081, 1921), np.uint8))], dtype=object), "inputs[0].data", "scale it down"),
])
def test_what_is_not_a_picture_is_a_400_naming_the_field(rows: np.ndarray, field: str, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_images(rows, _spec(), "inputs[0]")
    assert refused.value.field == field and says in refused.value.message
