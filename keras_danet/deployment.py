"""`keras_danet.export`: a DANet as a SavedModel, ONNX, LiteRT or OpenVINO file, from any backend.

Keras exports graphs of unknown size from TensorFlow only (JAX's SavedModel goes through
jax2tf, which OpenVINO cannot convert, and has no LiteRT path; PyTorch's export fixes the
size), but a DANet's weights are the same on every backend. So the model is exported where
it lives when that backend is TensorFlow, and otherwise saved to a temporary preset, rebuilt
by a TensorFlow process and exported there: one artifact of unknown size per format,
whatever backend trained the model.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import keras

from keras_danet import quantization
from keras_danet.config import tracing_for_export
from keras_danet.models import DANet

FORMATS = {
    "tf_saved_model": "",
    "onnx": ".onnx",
    "litert": ".tflite",
    "openvino": ".xml",
}
DTYPES = ("float32", "uint8")


class ExportError(RuntimeError):
    """An export that TensorFlow, tf2onnx or a converter could not do, and its reason."""


def export(
    model,
    path,
    format="onnx",
    *,
    labels=False,
    dtype="float32",
    size=None,
    int8=False,
    calibration=None,
):
    """Writes `model` (a DANet, or a preset name, folder or hf:// handle) to `path`.

    The artifact takes `images`, NHWC, 0-255, `dtype` float32 (as `predict`) or uint8, of
    any batch and size (or `size=(height, width)` fixed), and returns `logits`
    (batch, height, width, classes), and with `labels=True` also `labels`, their argmax
    (int32). `format` is "onnx", "tf_saved_model", "litert" or "openvino" (an .xml with its
    .bin beside it). An existing `path` is never replaced. TensorFlow does the export (the
    `tensorflow` extra), and the `deploy` extra brings tf2onnx and the runtimes.

    `int8=True` (onnx and openvino) quantizes the convolutions and matrix products to int8
    after export, measuring each activation's range on `calibration`: an array
    `(N, H, W, 3)` of 0-255 images, a list of images, or a folder of image files, like
    those the model will see (a few dozen to a few hundred). ONNX Runtime's static
    quantization does it for both (OpenVINO converts its quantized ONNX file).

    Returns `path`.

    Example:
    >>> keras_danet.export(model, "danet.onnx", format="onnx", labels=True)
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession("danet.onnx")
    >>> logits, labels = session.run(["logits", "labels"], {"images": images})
    >>> keras_danet.export(model, "danet_int8.xml", "openvino", int8=True, calibration="val/")
    """
    path = os.fspath(path)
    _check_options(path, format, dtype, size)
    quantization.check_calibration(int8, calibration, format)
    images = quantization.calibration_images(calibration, dtype, size) if int8 else None
    with tempfile.TemporaryDirectory(prefix="keras-danet-export-") as staging:
        if keras.backend.backend() == "tensorflow":
            if not isinstance(model, keras.Model):
                model = DANet.from_preset(model, progress=False)

            def export_float32(target, format):
                _export_here(model, target, format, labels, dtype, size)
        else:
            _require_tensorflow()
            preset = model
            if isinstance(model, keras.Model):
                preset = os.path.join(staging, "preset")
                model.save_to_preset(preset)

            def export_float32(target, format):
                _export_in_tensorflow(preset, target, format, labels, dtype, size)

        def write(target):
            if not int8:
                return export_float32(target, format)
            # int8 starts from a float32 ONNX file whatever the format (quantization.py).
            float32 = os.path.join(staging, "float32.onnx")
            export_float32(float32, "onnx")
            quantization.quantize(float32, target, format, images)

        _write_atomically(path, format, write)
    return path


def _check_options(path, format, dtype, size):
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}.")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
    if size is not None and (len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"size must be (height, width) in positive integers, got {size!r}.")
    for existing in written_paths(path, format):
        if os.path.lexists(existing):
            raise FileExistsError(
                f"{existing} exists: keras_danet.export does not replace a file it cannot "
                "tell it wrote. Remove it, or choose another path."
            )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"The folder {parent} does not exist.")


def written_paths(path, format):
    if format == "openvino":
        return [path, os.path.splitext(path)[0] + ".bin"]
    return [path]


def _write_atomically(path, format, write):
    """Exports into a staging folder beside `path`, then renames into place: a failed or
    killed export leaves no half-written artifact under the user's name."""
    parent = os.path.dirname(os.path.abspath(path))
    staging = tempfile.mkdtemp(prefix=".keras-danet-export-", dir=parent)
    try:
        target = os.path.join(staging, os.path.basename(path))
        write(target)
        for final in written_paths(path, format):
            staged = os.path.join(staging, os.path.basename(final))
            if os.path.lexists(final):
                raise FileExistsError(f"{final} appeared while exporting; it was left alone.")
            os.rename(staged, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _require_tensorflow():
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise ImportError(
            "Exporting needs TensorFlow, whatever backend the model runs on: pip install "
            '"keras-danet[tensorflow,deploy]".'
        ) from None


def _export_in_tensorflow(preset, target, format, labels, dtype, size):
    """Rebuilds the preset in a TensorFlow process and exports it there."""
    command = [
        sys.executable,
        "-c",
        "import sys; from keras_danet.deployment import _main; _main(sys.argv[1:])",
        os.fspath(preset),
        target,
        format,
        dtype,
        "labels" if labels else "logits",
    ]
    command += [str(v) for v in size] if size else []
    environment = dict(os.environ, KERAS_BACKEND="tensorflow")
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ExportError(
            f"Exporting to {format} in a TensorFlow process failed: "
            + (lines[-1] if lines else f"exit status {result.returncode}")
        )


def _export_here(model, target, format, labels, dtype, size):
    serving = _serving_model(model, labels, dtype)
    height, width = size or (None, None)
    spec = keras.InputSpec(shape=(None, height, width, 3), dtype=dtype, name="images")
    with tracing_for_export():
        serving.export(target, format=format, input_signature=[spec], verbose=False)


def _serving_model(model, labels, dtype):
    """`images` -> {"logits"[, "labels"]}: the DANet with named outputs."""
    images = keras.Input((None, None, 3), dtype=dtype, name="images")
    logits = model(_AsFloat(name="as_float")(images))
    outputs = {"logits": logits}
    if labels:
        outputs["labels"] = _ArgMax(name="argmax")(logits)
    return keras.Model(images, outputs, name=f"{model.name}_serving")


class _AsFloat(keras.layers.Layer):
    def call(self, images):
        return keras.ops.cast(images, "float32")


class _ArgMax(keras.layers.Layer):
    # Runs only in the TensorFlow graph of an export. TensorFlow's own argmax: Keras'
    # `ops.argmax` there orders -0.0 before 0.0 through a Bitcast, an op ONNX lacks.
    def call(self, logits):
        import tensorflow as tf

        return tf.cast(tf.math.argmax(logits, axis=-1), tf.int32)


def _main(argv):
    """The TensorFlow process of `_export_in_tensorflow`."""
    preset, target, format, dtype, outputs, *size = argv
    model = DANet.from_preset(preset, progress=False)
    size = tuple(int(v) for v in size) or None
    _export_here(model, target, format, outputs == "labels", dtype, size)
