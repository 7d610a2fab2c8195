"""A DANet exported from TensorFlow runs in each format's own runtime at sizes and batches
it was not exported at, with predict's numbers (issue 32, step 1).

Each artifact is exported once (tens of seconds each) and run at three odd sizes. On the
JAX and PyTorch passes these tests do not run: Keras exports dynamic shapes from
TensorFlow only; `keras_danet.export` (step 2) will export any backend's model through it.
"""

import keras
import numpy as np
import pytest

from tests.helpers import attentive_tiny_model

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="dynamic-shape export is TensorFlow's (keras_danet.export, step 2, for the others)",
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


def _runner(format, path):
    """A function running the artifact in its own runtime, NumPy in and out."""
    if format == "tf_saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        return lambda images: loaded.serve(images).numpy()
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        [images_input] = session.get_inputs()
        return lambda images: session.run(None, {images_input.name: images})[0]
    if format == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)  # no Flex delegate: builtin ops only

        def run(images):
            [images_input] = interpreter.get_input_details()
            interpreter.resize_tensor_input(images_input["index"], images.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(images_input["index"], images)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

        return run
    import openvino

    # OpenVINO runs in bf16 on CPUs with AVX512-BF16 unless asked for f32.
    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda images: compiled(images)[0]


@pytest.mark.parametrize("format", FILES)
def test_exported_model_runs_in_its_runtime_at_unseen_sizes(model, format, tmp_path):
    path = str(tmp_path / FILES[format])
    model.export(path, format=format, verbose=False)
    run = _runner(format, path)
    rng = np.random.default_rng(0)
    for batch, height, width in SIZES:
        images = rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")
        expected = model.predict(images, verbose=0)
        got = np.asarray(run(images))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))


def test_the_onnx_graph_has_one_input_and_no_loop(model, tmp_path):
    import onnx

    path = str(tmp_path / "danet.onnx")
    model.export(path, format="onnx", verbose=False)
    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == ["images"]  # mean and std are constants
    assert not {node.op_type for node in graph.node} & {"Loop", "Scan", "SequenceInsert"}
