"""int8 artifacts: an exported float32 ONNX or OpenVINO file, quantized after training.

`keras_danet.export(..., int8=True, calibration=images)` writes a float32 ONNX file, then
quantizes its convolutions and matrix products with ONNX Runtime's static quantization
(QDQ: int8 weights per output channel, uint8 activations, the layout its x86 kernels run
fastest), measuring each activation's range on the calibration images, so those should look
like what the model will see: a few dozen to a few hundred images of its domain. For
OpenVINO, its converter reads that QDQ file and runs it as int8. (OpenVINO's own quantizer,
NNCF, was measured too: as fast, a worse mIoU on the demo preset, and its scikit-learn
dependency, which Keras imports when installed, made every `import keras_danet` 1.8 s
slower.) Keras' own `model.quantize` covers Dense layers, not the convolutions that are
nearly all of DANet's work.
"""

import os

import numpy as np

from keras_danet.data.images import DataError, opencv, read_image

INT8_FORMATS = ("onnx", "openvino")


def check_calibration(int8, calibration, format):
    if not int8:
        if calibration is not None:
            raise ValueError("calibration images are used only with int8=True.")
        return
    if format not in INT8_FORMATS:
        raise ValueError(
            f"int8 is written for {' and '.join(INT8_FORMATS)}, not {format}: their runtimes "
            "run int8 convolutions on CPUs (VNNI, AMX)."
        )
    if calibration is None:
        raise ValueError(
            "int8=True needs calibration images (an array (N, H, W, 3), a list of images, or "
            "a folder of image files): a few dozen to a few hundred like those the model "
            "will see, to measure the range of each activation."
        )


def calibration_images(calibration, dtype, size=None):
    """The calibration images as a list of `(1, H, W, 3)` arrays in the artifact's `dtype`,
    resized to `size` where the artifact's size is fixed. A folder is read with OpenCV."""
    if isinstance(calibration, str | os.PathLike):
        images = _read_folder(os.fspath(calibration))
    elif isinstance(calibration, np.ndarray) and calibration.ndim == 4:
        images = list(calibration)
    else:
        images = [np.asarray(image) for image in calibration]
    if not images:
        raise ValueError("The calibration images are empty: give at least one image.")
    prepared = []
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"Calibration image {index} has shape {image.shape}; images are (H, W, 3) RGB."
            )
        if not np.isfinite(image).all():
            raise ValueError(f"Calibration image {index} holds NaN or infinite values.")
        if size is not None and tuple(image.shape[:2]) != tuple(size):
            cv2 = opencv()
            image = cv2.resize(
                image.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR
            )
        if dtype == "uint8":
            image = np.rint(np.clip(image, 0, 255))
        prepared.append(image.astype(dtype)[None])
    return prepared


def _read_folder(folder):
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"The calibration folder {folder} does not exist.")
    suffixes = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
    names = sorted(
        name
        for name in os.listdir(folder)
        if name.lower().endswith(suffixes) and not name.startswith(".")
    )
    if not names:
        raise DataError(f"The calibration folder {folder} holds no image files ({suffixes}).")
    return [read_image(os.path.join(folder, name)) for name in names]


def quantize(source, target, format, images):
    """Writes an int8 `format` file to `target` from the float32 ONNX file `source`."""
    if format == "onnx":
        _quantize_onnx(source, target, images)
        return
    quantized = os.path.join(os.path.dirname(source), "int8.onnx")
    _quantize_onnx(source, quantized, images)
    import openvino

    model = openvino.convert_model(quantized)
    openvino.save_model(model, target, compress_to_fp16=False)


def _quantize_onnx(source, target, images):
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise ImportError(
            'int8 ONNX files are made by ONNX Runtime: pip install "keras-danet[deploy]".'
        ) from None

    class _Images(CalibrationDataReader):
        def __init__(self):
            self._remaining = iter(images)

        def get_next(self):
            image = next(self._remaining, None)
            return None if image is None else {"images": image}

    quantize_static(
        source,
        target,
        _Images(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        # The convolutions and matrix products: the work. Quantizing the rest as well (the
        # residual and attention sums, the softmax) cost the demo preset 9 points of mIoU
        # with 24 calibration images, and these 0.
        op_types_to_quantize=["Conv", "MatMul"],
    )
