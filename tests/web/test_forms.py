"""Which form each input gets, and which outputs the playground reads as class and probabilities."""

from __future__ import annotations

import pytest

from mlgate.model.manifest import ImagePreprocessing, TensorSpec
from mlgate.web.forms import MAX_TABLE_COLUMNS, _answer_outputs, input_form

GRAY8 = ImagePreprocessing(width=8, height=8)


def spec(datatype: str, shape: tuple[int, ...], **extra: object) -> TensorSpec:
    return TensorSpec.model_validate({"name": "x", "datatype": datatype, "shape": shape, **extra})


def test_numeric_rows_are_tables_named_by_the_features() -> None:
    form = input_form(spec("FP64", (-1, 3), feature_names=("a", "b", "c")))
    assert form.kind == "table" and form.columns == ("a", "b", "c")
    assert input_form(spec("INT32", (-1, 2))).columns == ("x[0]", "x[1]")
    assert input_form(spec("BOOL", (-1,))).columns == ("x[0]",)
    # Feature names that do not match the width are not used.
    assert input_form(spec("FP32", (-1, 2), feature_names=("a",))).columns == ("x[0]", "x[1]")


def test_other_shapes_get_a_json_box_with_an_example() -> None:
    form = input_form(spec("FP32", (-1, 2, 3)))
    assert form.kind == "json" and form.example == "[[[0, 0, 0], [0, 0, 0]]]"
    assert input_form(spec("FP32", (-1, MAX_TABLE_COLUMNS + 1))).kind == "json"
    assert input_form(spec("FP32", (-1, -1))).kind == "json"
    assert input_form(spec("BYTES", (-1, 2))).example == '[["text", "text"]]'


def test_bytes_rows_are_text() -> None:
    assert input_form(spec("BYTES", (-1,))).kind == "text"
    assert input_form(spec("BYTES", (-1, 1))).kind == "text"


@pytest.mark.parametrize(("shape", "image", "request_shape"), [
    ((-1, 64), GRAY8, (1, 64)),
    ((-1, 8, 8), GRAY8, (1, 8, 8)),
    ((-1, -1, -1), GRAY8, (1, 8, 8)),
    ((-1, -1, -1, 3), ImagePreprocessing(width=4, height=2, color="rgb"), (1, 2, 4, 3)),
    ((-1, 3, -1, -1), ImagePreprocessing(width=4, height=2, color="rgb", layout="CHW"), (1, 3, 2, 4)),
    ((-1, -1), GRAY8, (1, 64)),
])
def test_image_inputs_know_their_request_shape(
    shape: tuple[int, ...], image: ImagePreprocessing, request_shape: tuple[int, ...]
) -> None:
    form = input_form(spec("FP32", shape, image=image))
    assert form.kind == "image" and form.image_shape == request_shape


def test_an_image_that_cannot_be_laid_into_the_shape_falls_back() -> None:
    # 8x8 grayscale into [-1, -1, -1, 3]: three channels wanted, one given.
    assert input_form(spec("FP32", (-1, -1, -1, 3), image=GRAY8)).kind == "json"


def test_class_and_probability_outputs() -> None:
    label = spec("INT64", (-1,)).model_copy(update={"name": "label"})
    proba = spec("FP32", (-1, 3)).model_copy(update={"name": "proba"})
    length = spec("INT32", (-1,)).model_copy(update={"name": "length"})
    assert _answer_outputs((label, proba), ("a", "b", "c")) == ("label", "proba")
    assert _answer_outputs((label, proba), ("a", "b")) == ("label", None)  # 3 columns, 2 labels
    assert _answer_outputs((proba,), ()) == (None, "proba")
    assert _answer_outputs((length,), ()) == (None, None)  # no classes: just a number
