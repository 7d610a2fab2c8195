"""mmseg DANet's training loss: main + PAM + CAM + 0.4 x auxiliary cross-entropy."""

import keras
import numpy as np
from keras import ops

from keras_danet.constants import IGNORE_INDEX
from keras_danet.data.images import fractional_values, listed

# mmseg's DANet configs: the three DAHead outputs with weight 1, the FCN auxiliary head 0.4.
HEAD_WEIGHTS = {"main": 1.0, "pam": 1.0, "cam": 1.0, "aux": 0.4}
_FLOAT32_EPSILON = 1.1920929e-07


def pixel_cross_entropy(labels, logits, ignore_index=IGNORE_INDEX):
    """Per-pixel softmax cross-entropy and the mask of labelled pixels.

    `labels` (batch, H, W) integers, `logits` (batch, H, W, classes). Ignored pixels get a
    loss of 0. Written with `take_along_axis` rather than through
    `keras.losses.sparse_categorical_crossentropy`: Keras' JAX path multiplies by a one-hot
    copy of the labels, a (batch, H, W, classes) tensor (630 MB for 4 ADE20K crops).
    """
    labels = ops.cast(labels, "int32")
    valid = ops.not_equal(labels, ignore_index)
    safe_labels = ops.where(valid, labels, 0)
    log_probabilities = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    picked = ops.take_along_axis(log_probabilities, ops.expand_dims(safe_labels, -1), axis=-1)
    losses = ops.where(valid, -ops.squeeze(picked, -1), 0.0)
    return losses, valid


@keras.saving.register_keras_serializable(package="keras_danet")
class DANetLoss(keras.losses.Loss):
    """The loss of mmseg's DANet configs, the default of `DANet.compile()`.

    Cross-entropy on each head's logits (resized to the label size, which the model does),
    weighted 1 for the main (PAM + CAM), PAM and CAM outputs and 0.4 for the FCN auxiliary
    head, then summed. Pixels labelled `ignore_index` contribute 0. Each term is averaged
    over **all** pixels, ignored ones included, as mmseg's `avg_non_ignore=False`;
    `avg_non_ignore=True` averages over the labelled pixels only (PyTorch's
    `cross_entropy`, Keras' `ignore_class`).

    Called on a dict `{"main", "pam", "cam", "aux"}` of logits (what `DANet` returns while
    training) it sums every term; on a single tensor (evaluation) it is the main term.

    Args:
        head_weights: weight of each head's term.
        ignore_index: the label of unlabelled pixels.
        avg_non_ignore: average over labelled pixels instead of all pixels.

    Example:
    >>> model.compile(loss=keras_danet.training.DANetLoss(avg_non_ignore=True))
    """

    def __init__(
        self,
        head_weights=None,
        ignore_index=IGNORE_INDEX,
        avg_non_ignore=False,
        name="danet_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        weights = dict(HEAD_WEIGHTS if head_weights is None else head_weights)
        unknown = set(weights) - set(HEAD_WEIGHTS)
        if unknown or "main" not in weights:
            raise ValueError(
                f"head_weights takes the heads {sorted(HEAD_WEIGHTS)}, 'main' included; "
                f"got {sorted(weights)}."
            )
        self.head_weights = {key: float(value) for key, value in weights.items()}
        self.ignore_index = int(ignore_index)
        self.avg_non_ignore = bool(avg_non_ignore)

    def terms(self, labels, logits, sample_weight=None):
        """Each head's weighted term: `{"main": ..., "pam": ..., ...}` (scalars)."""
        outputs = logits if isinstance(logits, dict) else {"main": logits}
        labels = as_label_map(labels)
        terms = {}
        for head, weight in self.head_weights.items():
            if head not in outputs:
                continue
            head_logits = outputs[head]
            check_label_size(labels, head_logits)
            losses, valid = pixel_cross_entropy(labels, head_logits, self.ignore_index)
            if sample_weight is not None:
                losses = losses * _broadcast_weight(sample_weight, losses)
            if self.avg_non_ignore:
                count = ops.sum(ops.cast(valid, "float32"))
            else:
                count = ops.cast(ops.size(losses), "float32")
            # mmseg adds float32's epsilon, so that an all-ignored batch gives 0, not NaN.
            terms[head] = weight * ops.sum(losses) / (count + _FLOAT32_EPSILON)
        return terms

    def __call__(self, y_true, y_pred, sample_weight=None):
        return ops.sum(ops.stack(list(self.terms(y_true, y_pred, sample_weight).values())))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {
            "name": self.name,
            "head_weights": self.head_weights,
            "ignore_index": self.ignore_index,
            "avg_non_ignore": self.avg_non_ignore,
        }


def check_label_array(labels, num_classes, where="labels"):
    """Raises a clear error for NumPy labels that are not class indices of `num_classes`.

    Integers below `num_classes`, or 255 for ignored pixels; anything else (a float map
    from a bilinear resize, PyTorch's -1, a class the model does not have) is refused with
    the values found. Other types are left alone (`input_check` converts batches first).
    """
    if not isinstance(labels, np.ndarray):
        return
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        fractional = fractional_values(labels)
        raise ValueError(
            f"{where}: labels must be integer class indices, got {labels.dtype}"
            + (f" holding {listed(fractional)}" if len(fractional) else "")
            + ". A float label map (from a bilinear resize, say) needs nearest-neighbour "
            "resizing and an integer cast."
        )
    if labels.size == 0 or _all_classes(labels, num_classes):
        return
    found = np.unique(labels[(labels < 0) | ((labels >= num_classes) & (labels != IGNORE_INDEX))])
    raise ValueError(
        f"{where}: label values {listed(found)} are not classes of this {num_classes}-class "
        f"model: labels are 0-{num_classes - 1}, and {IGNORE_INDEX} for ignored pixels "
        "(not -1). A dataset with more classes needs model.reset_classifier(its count)."
    )


def _all_classes(labels, num_classes):
    # The common cases in one or two passes and no full-size temporary: every value a class,
    # or classes and 255 in uint8 (a 256-bin count).
    low, high = labels.min(), labels.max()
    if low < 0:
        return False
    if high < num_classes:
        return True
    if high != IGNORE_INDEX:
        return False
    if labels.dtype == np.uint8:
        counts = np.bincount(labels.ravel(), minlength=256)
        return not counts[num_classes:IGNORE_INDEX].any()
    return not ((labels >= num_classes) & (labels != IGNORE_INDEX)).any()


def as_label_map(labels, check_type=True):
    """(batch, H, W) class maps from (batch, H, W) or (batch, H, W, 1) labels; with
    `check_type`, an error unless they are integers."""
    labels = ops.convert_to_tensor(labels)
    if check_type and ("float" in str(labels.dtype) or "complex" in str(labels.dtype)):
        raise ValueError(
            f"Labels must be integer class indices, got {labels.dtype}: cast them (after a "
            "nearest-neighbour resize) to uint8 or int32; 255 marks ignored pixels."
        )
    if len(labels.shape) == 4:
        if labels.shape[-1] not in (1, None):
            raise ValueError(
                f"Labels must be class maps (batch, H, W) or (batch, H, W, 1); got shape "
                f"{tuple(labels.shape)}."
            )
        labels = ops.squeeze(labels, -1)
    if len(labels.shape) != 3:
        raise ValueError(
            f"Labels must be class maps (batch, H, W) or (batch, H, W, 1); got shape "
            f"{tuple(labels.shape)}."
        )
    return labels


def check_label_size(labels, logits):
    """Raises a clear error where class maps and logits differ in spatial size."""
    label_size, logit_size = tuple(labels.shape[1:3]), tuple(logits.shape[1:3])
    if None in label_size + logit_size or label_size == logit_size:
        return
    raise ValueError(
        f"Labels are {label_size[0]}x{label_size[1]} but the images are "
        f"{logit_size[0]}x{logit_size[1]}: each mask must have its image's size (pad both "
        "to the crop, as mmseg does)."
    )


def _broadcast_weight(sample_weight, losses):
    weight = ops.cast(sample_weight, "float32")
    while len(weight.shape) < len(losses.shape):
        weight = ops.expand_dims(weight, -1)
    if len(weight.shape) > len(losses.shape):
        weight = ops.squeeze(weight, -1)
    return weight
