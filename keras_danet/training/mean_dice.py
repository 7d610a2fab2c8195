"""`MeanDice`: mmseg's mDice as a Keras metric, for `fit`'s and `evaluate`'s logs."""

import keras
from keras import ops

from keras_danet.training.mean_iou import MeanIoU


@keras.saving.register_keras_serializable(package="keras_danet")
class MeanDice(MeanIoU):
    """Mean Dice over the epoch, as mmseg's `IoUMetric(iou_metrics=["mDice"])` averages it.

    Per class `2 TP / (predicted + labelled pixels)`, averaged over the classes present in
    the labels or the predictions; label 255 ignored. Keras has Dice only as a loss, so this
    keeps `MeanIoU`'s confusion matrix and changes only the result. `DANet.compile` builds
    it from the name "mDice".

    Example:
    >>> model.compile(metrics=["mIoU", "mDice"])   # logs mean_iou and mean_dice
    """

    def __init__(self, num_classes, name="mean_dice", **kwargs):
        # MeanIoU's confusion matrix and defaults (255 ignored, logits, float32 counts).
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        matrix = ops.cast(self.total_cm, "float32")  # rows: labels, columns: predictions
        true_positives = ops.diagonal(matrix)
        denominator = ops.sum(matrix, axis=0) + ops.sum(matrix, axis=1)
        present = ops.greater(denominator, 0)
        dice = ops.where(present, 2 * true_positives / ops.where(present, denominator, 1), 0)
        count = ops.sum(ops.cast(present, "float32"))
        return ops.sum(dice) / ops.maximum(count, 1)
