"""Checks the labels and images of every batch on its way into `fit` and `evaluate`, whatever
feeds them: arrays, generators, `PyDataset`s, `tf.data` and torch `DataLoader`s.

Inside the compiled step a bad batch is not an error: a label >= num_classes gives NaN on
JAX, "Detected at node GatherV2" on TensorFlow and a wrong, finite loss on PyTorch, and NaN
pixels surface as a NaN loss. So each batch is checked in the input pipeline, where NumPy
sees it before the step (benchmarks/input_check.py measures the cost against a step).
"""

import contextlib

import keras
import numpy as np

from keras_danet.training.keras_internals import (
    DataAdapter,
    can_convert_arrays,
    get_data_adapter,
    get_torch_dataloader,
)
from keras_danet.training.loss import check_label_array


def check_images(images, where="images"):
    """Raises a clear error where float images hold NaN or infinite values."""
    images = _as_numpy(images)
    if images.dtype.kind not in "fc" or images.size == 0:
        return
    # min and max propagate NaN and keep infinities: two passes, no temporary array.
    if np.isfinite(images.min()) and np.isfinite(images.max()):
        return
    nan, infinite = np.isnan(images), np.isinf(images)
    axes = tuple(range(1, images.ndim))
    which = np.flatnonzero((nan | infinite).any(axis=axes)) if images.ndim == 4 else []
    shown = ", ".join(str(i) for i in which[:10]) + (" ..." if len(which) > 10 else "")
    raise ValueError(
        f"{where}: the images hold {int(nan.sum())} NaN and {int(infinite.sum())} infinite "
        f"values" + (f" (image {shown} of the batch)" if len(which) else "") + ", so the loss "
        "would be NaN. Check how the images are decoded and normalised."
    )


def check_batch(batch, num_classes, where):
    """Checks one `(images, labels[, sample_weight])` batch (any backend's tensors)."""
    images, labels, _ = keras.utils.unpack_x_y_sample_weight(batch)
    for value in keras.tree.flatten(images):
        check_images(value, where)
    if labels is not None and not isinstance(labels, (dict, list, tuple)):
        check_label_array(_as_numpy(labels), num_classes, where)


def check_arrays(images, labels, num_classes, where, chunk=64):
    """`check_batch` on whole arrays, `chunk` images at a time (a bounded temporary)."""
    if labels is not None:
        check_label_array(labels, num_classes, f"{where}(y=...)")
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), chunk):
            check_images(images[start : start + chunk], f"{where}(x=...), images {start}+")


def checked_input(x, y, num_classes, where, **adapter_options):
    """`x` for Keras' `fit` / `evaluate`, its batches checked on the way in.

    Arrays are checked whole, here; keras_danet datasets check each label map against their
    classes as they read it, so only their class count is compared with the model's; any
    other data (generator, PyDataset, tf.data, torch DataLoader) becomes a DataAdapter whose
    batches are checked one by one. Returns `(x, y, adapter)`, `adapter` None where
    nothing is wrapped.
    """
    dataset_classes = getattr(x, "num_classes", None)
    if hasattr(x, "files") and isinstance(dataset_classes, int):
        if dataset_classes != num_classes:
            raise ValueError(
                f"{where}: the dataset {getattr(x, 'name', '')!s} has {dataset_classes} "
                f"classes but the model has {num_classes}. Fine-tune a model for it with "
                f"model.reset_classifier({dataset_classes}) or DANet.from_preset(..., "
                f"num_classes={dataset_classes}), or pick classes with classes=[...]."
            )
        return x, y, None
    if x is None or isinstance(x, DataAdapter):
        return x, y, None
    if can_convert_arrays((x, y, adapter_options.get("sample_weight"))):
        check_arrays(x, y, num_classes, where)
        return x, y, None
    adapter = CheckedBatches(get_data_adapter(x, y, **adapter_options), num_classes, where)
    return adapter, None, adapter


@contextlib.contextmanager
def input_errors(model, adapters=()):
    """Around Keras' `fit` / `evaluate`: an error raised by the data leaves the model with
    its weights and reaches the caller as raised.

    Keras' JAX trainer takes the variables' values out of the model for its loop and puts
    them back once a step has run, so an error while the first batch is read (a bad label,
    an unreadable file) left the model without weights (Keras 3.15: "'NoneType' object is
    not callable" at the next use). The values are held here and put back; `fit`'s
    validation runs through `DANet.evaluate`, which holds the weights trained so far.
    TensorFlow reports an error from the tf.data pipeline as "Graph execution error"; the
    checked batches keep their own error, raised instead.
    """
    held = _HeldWeights(model)
    try:
        yield
    except Exception:
        held.put_back()
        for adapter in adapters:
            if adapter.error is not None:
                error, adapter.error = adapter.error, None
                raise error from None
        raise


class _HeldWeights:
    """References to the JAX values of a model's variables (no copy: JAX arrays are
    immutable); `put_back()` restores those the trainer left empty."""

    def __init__(self, model):
        self._owner = model
        self.values = None
        if keras.backend.backend() == "jax":
            self.values = {id(v): v.value for v in self._variables()}

    def _variables(self):
        optimizer = getattr(self._owner, "optimizer", None)
        variables = list(self._owner.variables) + list(self._owner.metrics_variables)
        return variables + (list(optimizer.variables) if optimizer is not None else [])

    def put_back(self):
        if self.values is None:
            return
        for variable in self._variables():
            if variable._value is not None:
                continue
            value = self.values.get(id(variable))
            if value is None or value.is_deleted():
                # Made inside this fit (optimizer slots, compiled metrics): still at their
                # initial zeros, which is what their initializers gave.
                value = keras.ops.zeros(variable.shape, variable.dtype)
            variable.assign(value)


class CheckedBatches(DataAdapter):
    """Keras' own adapter for the data, with `check_batch` on every batch it yields.

    Only the iterator that the backend uses runs the check: NumPy's and JAX's on NumPy
    arrays; PyTorch's on NumPy arrays before they become tensors; TensorFlow's inside the
    `tf.data` pipeline through `tf.numpy_function`. An error raised there reaches `fit` as
    a TensorFlow op error, so it is also kept in `error` for `fit` to raise as it is.
    """

    def __init__(self, adapter, num_classes, where):
        self.adapter = adapter
        self.num_classes = num_classes
        self.where = where
        self.error = None

    def _check(self, batch, index):
        try:
            check_batch(batch, self.num_classes, f"{self.where}, batch {index}")
        except ValueError as error:
            self.error = error
            raise

    def _checked(self, batches):
        for index, batch in enumerate(batches):
            self._check(batch, index)
            yield batch

    def get_numpy_iterator(self):
        return self._checked(self.adapter.get_numpy_iterator())

    def get_jax_iterator(self):
        return self._checked(self.adapter.get_jax_iterator())

    def get_torch_dataloader(self):
        # Checked as NumPy, then made tensors (on the default device) as Keras does.
        return get_torch_dataloader(self._checked(self.adapter.get_numpy_iterator()))

    def get_tf_dataset(self):
        import tensorflow as tf

        def checked(index, batch):
            def check(index, *values):
                self._check(tf.nest.pack_sequence_as(batch, list(values)), int(index))
                return np.bool_(True)

            done = tf.numpy_function(check, [index, *tf.nest.flatten(batch)], Tout=tf.bool)
            with tf.control_dependencies([done]):
                return tf.nest.map_structure(tf.identity, batch)

        dataset = self.adapter.get_tf_dataset().enumerate().map(checked)
        # tf.data's autotuning off, with a fixed prefetch: deleting an autotuned iterator (at
        # every epoch's end, and after an error) can block for up to a minute on a busy CPU
        # in TF 2.21. Its tuning thread sleeps for a period that doubles up to 60 s; the
        # cancellation wakes it before marking itself cancelled, so a thread woken in
        # between sleeps again and the iterator's destructor waits for it (seen: 20-72 s
        # waits in the test suite with two test processes on two cores).
        options = tf.data.Options()
        options.autotune.enabled = False
        return dataset.prefetch(2).with_options(options)

    @property
    def num_batches(self):
        return self.adapter.num_batches

    @property
    def batch_size(self):
        return self.adapter.batch_size

    @property
    def has_partial_batch(self):
        return self.adapter.has_partial_batch

    @property
    def partial_batch_size(self):
        return self.adapter.partial_batch_size

    def on_epoch_begin(self):
        self.adapter.on_epoch_begin()

    def on_epoch_end(self):
        self.adapter.on_epoch_end()


def _as_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
    return np.asarray(value)
