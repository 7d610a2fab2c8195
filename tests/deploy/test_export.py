"""`keras_danet.export` and `keras-danet export`: a model built on this pass's backend, exported
(through TensorFlow where the backend is another), runs in its runtime at unseen sizes with
this backend's `predict` numbers, its argmax as `labels`. Every format runs from TensorFlow and
from one of JAX and PyTorch."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_danet
from tests.deploy.runtimes import runner
from tests.deploy.test_export_formats import FILES, SIZES
from tests.helpers import attentive_tiny_model

IMAGES = np.zeros((2, 8, 8, 3), "float32")


@pytest.fixture(scope="module")
def model():
    return attentive_tiny_model()


# Each format with one option: uint8 input (ONNX), a fixed size (LiteRT, as phones run it).
OPTIONS = {
    "tf_saved_model": ("float32", None),
    "onnx": ("uint8", None),
    "litert": ("float32", (64, 96)),
    "openvino": ("float32", None),
}
# Every format from TensorFlow, and each format from JAX or from PyTorch. From those two the
# export is one path whatever the format (a temporary preset rebuilt in a TensorFlow process,
# then TensorFlow's export of it), so each backend's handoff is run twice, not four times:
# a format costs 15-25 s of the 20-minute CI here.
FORMATS_OF_BACKEND = {
    "tensorflow": list(FILES),
    "jax": ["onnx", "openvino"],
    "torch": ["tf_saved_model", "litert"],
}


@pytest.mark.parametrize("format", FORMATS_OF_BACKEND[keras.backend.backend()])
def test_export_from_this_backend_runs_in_its_runtime(model, format, tmp_path):
    dtype, size = OPTIONS[format]
    path = str(tmp_path / FILES[format])
    assert keras_danet.export(model, path, format, labels=True, dtype=dtype, size=size) == path
    _assert_input(format, path, dtype, size)
    run = runner(format, path)
    rng = np.random.default_rng(1)
    for batch, height, width in SIZES if size is None else [(1, *size), (3, *size)]:
        images = rng.uniform(0, 255, (batch, height, width, 3)).round().astype(dtype)
        expected = model.predict(images.astype("float32"), verbose=0)
        outputs = run(images)
        assert set(outputs) == {"logits", "labels"}
        np.testing.assert_allclose(outputs["logits"], expected, atol=1e-4, rtol=0)
        np.testing.assert_array_equal(outputs["labels"], expected.argmax(-1))
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []  # no staging


def _assert_input(format, path, dtype, size):
    if format == "onnx":
        import onnxruntime

        [images] = onnxruntime.InferenceSession(path).get_inputs()
        assert images.name == "images" and images.type == f"tensor({dtype})"
    elif format == "litert":
        from ai_edge_litert.interpreter import Interpreter

        details = Interpreter(model_path=path).get_signature_runner().get_input_details()
        assert list(details["images"]["shape_signature"]) == [-1, *size, 3]


def test_an_existing_file_is_never_replaced(model, tmp_path):
    mine = tmp_path / "danet.onnx"
    mine.write_bytes(b"the user's own file")
    with pytest.raises(FileExistsError, match=r"danet.onnx exists: .* does not replace"):
        keras_danet.export(model, str(mine), "onnx")
    assert mine.read_bytes() == b"the user's own file"
    (tmp_path / "model.bin").write_bytes(b"weights of another model")  # OpenVINO's pair
    with pytest.raises(FileExistsError, match=r"model.bin exists"):
        keras_danet.export(model, str(tmp_path / "model.xml"), "openvino")
    assert not (tmp_path / "model.xml").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"format": "pt"}, "format must be one of"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"size": (40,)}, r"size must be \(height, width\)"),
        ({"int8": True}, "int8=True needs calibration images"),
        ({"calibration": IMAGES}, "calibration images are used only with int8=True"),
        ({"format": "litert", "int8": True, "calibration": IMAGES}, "not litert"),
        ({"int8": True, "calibration": IMAGES[..., 0]}, r"image 0 has shape \(8, 8\)"),
        ({"int8": True, "calibration": IMAGES * np.nan}, "image 0 holds NaN"),
        ({"int8": True, "calibration": []}, "calibration images are empty"),
    ],
)
def test_bad_options_are_named(model, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        keras_danet.export(model, str(tmp_path / "x.onnx"), **{"format": "onnx", **options})
    assert list(tmp_path.iterdir()) == []


def test_keras_quantize_points_to_int8_export(model):
    # Keras quantizes Dense layers only: on a DANet it warned per layer and changed nothing.
    with pytest.raises(NotImplementedError, match=r"keras_danet.export\(model, .*int8=True"):
        model.quantize("int8")


def test_a_missing_calibration_folder_is_named(model, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"calibration folder .*missing does not exist"):
        keras_danet.export(
            model, str(tmp_path / "x.onnx"), int8=True, calibration=tmp_path / "missing"
        )


@pytest.mark.one_backend
def test_the_export_command(tmp_path):
    out = tmp_path / "demo.onnx"
    command = [sys.executable, "-m", "keras_danet.cli", "--quiet", "export", "--format", "onnx"]
    command += ["--out", str(out), "--labels"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out} (" in done.stdout
    assert "input images (N, H, W, 3) float32; outputs logits (N, H, W, " in done.stdout
    assert ", labels (N, H, W) int32" in done.stdout and out.stat().st_size > 0
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "exists" in again.stderr
