"""`MeanIoU`: Keras' metric with a confusion matrix PyTorch can count quickly."""

import keras
from keras import ops

from keras_danet.constants import IGNORE_INDEX


@keras.saving.register_keras_serializable(package="keras_danet")
class MeanIoU(keras.metrics.MeanIoU):
    """`keras.metrics.MeanIoU` with mmseg's defaults, the same numbers on every backend.

    On the PyTorch backend Keras counts the confusion matrix with `ops.scatter`, which there
    is a Python loop over the pixels: 524,288 iterations for one 512x512 batch of 2, most of
    a training step, and millions of events in a profile. Here PyTorch counts it with one
    `bincount`; the other backends keep Keras' own scatter (JAX's `bincount` cannot be
    compiled, its length being data-dependent).

    `DANet.compile` builds it from the name "mIoU" (logged as `mean_iou`): label 255
    ignored, logits as predictions, float32 counts (int32 ones overflow within an epoch of
    large crops).

    Example:
    >>> metric = keras_danet.training.MeanIoU(num_classes=19)
    >>> model.compile(metrics=[metric])
    """

    def __init__(
        self,
        num_classes,
        name="mean_iou",
        dtype="float32",
        ignore_class=IGNORE_INDEX,
        sparse_y_true=True,
        sparse_y_pred=False,
        axis=-1,
    ):
        super().__init__(
            num_classes,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        if keras.backend.backend() != "torch":
            return super().update_state(y_true, y_pred, sample_weight)
        # Keras' rules (iou_metrics._IoUBase): class scores are reduced by argmax; pixels
        # whose label is ignored or out of range, or whose prediction is out of range,
        # count nothing.
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        if not self.sparse_y_true:
            y_true = ops.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = ops.argmax(y_pred, axis=self.axis)
        y_true, y_pred = ops.reshape(y_true, [-1]), ops.reshape(y_pred, [-1])
        classes = self.num_classes
        # The range is checked before the cast, as Keras does: a label of -0.5 is no class 0.
        counted = (y_true >= 0) & (y_true < classes) & (y_pred >= 0) & (y_pred < classes)
        if self.ignore_class is not None:
            counted = counted & (y_true != self.ignore_class)
        weights = ops.ones(ops.shape(y_true), self.dtype)
        if sample_weight is not None:
            sample_weight = ops.reshape(ops.convert_to_tensor(sample_weight, self.dtype), [-1])
            weights = ops.broadcast_to(sample_weight, ops.shape(y_true))
        # where, not a product: an inf or NaN weight on an uncounted pixel counts nothing.
        weights = ops.where(counted, weights, 0)
        y_true, y_pred = ops.cast(y_true, "int64"), ops.cast(y_pred, "int64")
        cells = ops.where(counted, y_true * classes + y_pred, 0)
        counts = ops.bincount(cells, weights=weights, minlength=classes * classes)
        matrix = ops.reshape(ops.cast(counts, self.dtype), (classes, classes))
        return self.total_cm.assign(self.total_cm + matrix)
