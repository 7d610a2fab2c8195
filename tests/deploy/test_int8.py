"""int8 artifacts of the bundled demo preset (trained weights, so that quantization error
shows in the mIoU), calibrated on training-like generated scenes and measured on the
held-out ones, in ONNX Runtime and OpenVINO.

Quantization reads the float32 file `keras_danet.export` wrote, which TensorFlow writes
whatever backend the model trained on (tests/deploy/test_export.py proves each backend's
file equal to its `predict`), so these run on one backend's pass.
"""

import os

import numpy as np
import pytest

import keras_danet
from keras_danet.data import save_synthetic_scenes, synthetic_scenes
from keras_danet.metrics import SegmentationMetrics
from tests.deploy.runtimes import runner

HEIGHT, WIDTH = 96, 144  # the preset's held-out scenes: metadata.json's "held_out"


def _miou(predictions, labels):
    metrics = SegmentationMetrics(4)
    metrics.update(predictions, labels)
    return metrics.result().miou


@pytest.fixture(scope="module")
def demo():
    model = keras_danet.DANet.from_preset("danet_demo_shapes", progress=False)
    images, labels = synthetic_scenes(32, HEIGHT, WIDTH, seed=12345)
    predicted = model.predict(images.astype("float32"), verbose=0).argmax(-1)
    return model, images, labels, predicted


def _int8_ops(path, format):
    if format == "onnx":
        import onnx

        graph = onnx.load(path).graph
        weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
        convolutions = [n for n in graph.node if n.op_type == "Conv"]
        quantized = [
            n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
        ]
        return len(convolutions), len(quantized)
    import openvino

    model = openvino.Core().read_model(path)
    convolutions = [op for op in model.get_ops() if op.get_type_name() == "Convolution"]
    int8 = [
        op
        for op in model.get_ops()
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8"
    ]
    return len(convolutions), len(int8)


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "format, dtype, size",
    [("onnx", "uint8", (HEIGHT, WIDTH)), ("openvino", "float32", None)],
)
def test_int8_keeps_the_demo_presets_miou_within_a_point(demo, format, dtype, size, tmp_path):
    model, images, labels, predicted = demo
    # Calibration from another seed and size than the held-out scenes: ONNX's from an
    # array (resized to the fixed input size), OpenVINO's from a folder of PNG files.
    if format == "onnx":
        calibration = synthetic_scenes(24, 64, 96, seed=1)[0]
    else:
        calibration = os.path.join(save_synthetic_scenes(str(tmp_path), 24, 80, 120, 1), "images")
    path = str(tmp_path / ("int8.onnx" if format == "onnx" else "int8.xml"))
    keras_danet.export(
        model, path, format, labels=True, dtype=dtype, size=size, int8=True, calibration=calibration
    )
    convolutions, quantized = _int8_ops(path, format)
    assert convolutions > 50 and quantized >= convolutions  # every convolution's weights int8
    run = runner(format, path)
    int8_predicted = np.concatenate(
        [run(images[i : i + 8].astype(dtype))["labels"] for i in range(0, len(images), 8)]
    )
    float32, int8 = _miou(predicted, labels), _miou(int8_predicted, labels)
    assert float32 > 0.9  # the preset works, so a loss would show
    assert int8 >= float32 - 0.01, (float32, int8)  # at most one point of mIoU
    assert np.mean(int8_predicted == predicted) > 0.97
