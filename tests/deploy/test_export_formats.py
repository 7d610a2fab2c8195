"""`model.export` on TensorFlow: each format runs in its own runtime at sizes and batches it
was not exported at, with predict's numbers.

Each artifact is exported once (tens of seconds each) and run at three odd sizes. Here the
two formats whose files `model.export` shapes differently from `keras_danet.export` (ONNX's
inputs, OpenVINO's outputs); tests/deploy/test_export.py runs all four through
`keras_danet.export`, which on TensorFlow traces the same graph. On the JAX and PyTorch
passes these tests do not run: Keras exports dynamic shapes from TensorFlow only.
"""

import keras
import numpy as np
import pytest

from tests.deploy.runtimes import runner
from tests.helpers import attentive_tiny_model

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="model.export's dynamic shapes are TensorFlow's (test_export.py: the others)",
)

# (batch, height, width): none is a multiple of the output stride, none was traced.
SIZES = [(1, 37, 53), (3, 64, 96), (1, 97, 131)]
FILES = {
    "tf_saved_model": "saved_model",
    "onnx": "danet.onnx",
    "litert": "danet.tflite",
    "openvino": "danet.xml",
}


@pytest.fixture(scope="module")
def model():
    return attentive_tiny_model()


@pytest.mark.parametrize("format", ["onnx", "openvino"])
def test_exported_model_runs_in_its_runtime_at_unseen_sizes(model, format, tmp_path):
    path = str(tmp_path / FILES[format])
    model.export(path, format=format, verbose=False)
    run = runner(format, path)
    rng = np.random.default_rng(0)
    for batch, height, width in SIZES:
        images = rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")
        expected = model.predict(images, verbose=0)
        got = np.asarray(run(images)["logits"])
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))
    if format == "onnx":
        import onnx

        graph = onnx.load(path).graph
        assert [i.name for i in graph.input] == ["images"]  # mean and std are constants
        assert not {node.op_type for node in graph.node} & {"Loop", "Scan", "SequenceInsert"}
