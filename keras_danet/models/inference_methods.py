"""What users call on a trained DANet to use it: `segment` and `export`, each delegating to
the module that does the work (`inference.py`; `keras_danet.export` in `deployment.py` for
files with named outputs that run without Keras)."""

import keras

from keras_danet import inference
from keras_danet.config import tracing_for_export
from keras_danet.constants import MULTI_SCALE_RATIOS
from keras_danet.presets.preset import TestSettings


class InferenceMethods:
    """Mixin for `DANet` (before `keras.Model` in its bases): `segment`, `export`, and
    `quantize`'s pointer to int8 export.

    Example:
    >>> labels = model.segment("street.png")
    """

    def export(self, filepath, format="tf_saved_model", **kwargs):
        """`keras.Model.export`, traced with `tracing_for_export()`: the position
        attention computes its matrix at once, with no loop an exporter cannot convert.

        Example:
        >>> model.export("danet.onnx", format="onnx")   # on the TensorFlow backend
        """
        if kwargs.get("input_signature") is None:
            # Keras' ONNX export asks for a model that has been called; the input is known.
            images = keras.InputSpec(shape=(None, None, None, 3), dtype="float32", name="images")
            kwargs["input_signature"] = [images]
        with tracing_for_export():
            return super().export(filepath, format=format, **kwargs)

    def quantize(self, mode=None, **kwargs):
        """Refused with the way that works: Keras' `quantize` converts Dense, EinsumDense and
        Embedding layers, and a DANet is convolutions, so it would warn for each layer and
        change nothing. `keras_danet.export(..., int8=True)` writes an int8 file instead.
        """
        raise NotImplementedError(
            f"model.quantize({mode!r}) would change nothing: Keras quantizes Dense, EinsumDense "
            "and Embedding layers, and a DANet's layers are convolutions. For int8 inference, "
            "export a quantized file: keras_danet.export(model, 'danet.onnx', int8=True, "
            "calibration=images) (ONNX Runtime or OpenVINO; README, Deploy / int8)."
        )

    def segment(
        self,
        images,
        *,
        output="labels",
        mode=None,
        crop=None,
        stride=None,
        test_scale=None,
        multi_scale=False,
        ratios=MULTI_SCALE_RATIOS,
        flip=True,
        progress=False,
    ):
        """Class maps of images, each at its own original resolution.

        `images` is one image or a list: file paths, PIL images or arrays (RGB, grayscale or
        RGBA; uint8, 16-bit, or floats 0-255), each of any size, or a 4-D batch; or a folder
        or a glob pattern ("photos/*.jpg") of image files. Each is segmented with this
        preset's test mode (whole image, or sliding windows with its crop and stride, after
        its test resize), as mmseg evaluated it; `mode`, `crop`, `stride` and `test_scale`
        override that. `multi_scale=True` averages the class probabilities over mmseg's
        scales (and their mirror images with `flip`: True, False, "vertical" or a list such
        as `["horizontal", "vertical"]`).

        `output` is what each image gives:
        - "labels": a `(H, W)` uint8 class map;
        - "probabilities": `(H, W, num_classes)` float32 class probabilities;
        - "masks": a list of `{"label", "index", "score", "mask"}`, one per class present:
          its name (`preset.dataset.class_names`), its index, its mean probability over
          its pixels and a `(H, W)` bool mask; the shape of transformers' image-segmentation
          pipeline, with NumPy masks.

        Returns that for one image, a list for a list or a batch, and `{path: ...}` in
        sorted order for a folder or a pattern (all in memory: probabilities of a large
        folder are better asked for a few files at a time).

        Example:
        >>> labels = model.segment("street.png")                 # (H, W) class indices
        >>> labels = model.segment(["a.jpg", "b.jpg"], multi_scale=True)
        >>> for found in model.segment("street.png", output="masks"):
        ...     print(found["label"], found["score"], found["mask"].sum())
        >>> maps = model.segment("photos/")                      # {path: class map}
        """
        settings = TestSettings.of(self, mode, crop, stride, test_scale)
        return inference.segment(
            self, images, settings, multi_scale, ratios, flip, progress=progress, output=output
        )
