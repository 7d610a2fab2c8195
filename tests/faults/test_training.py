"""Training input mistakes end `fit` with an error that names the values, before a step runs;
a diverging run stops at the first NaN loss instead of training on with NaN weights."""

import warnings

import keras
import numpy as np
import pytest

from keras_danet import DANet
from keras_danet.training import DANetLoss
from tests.conftest import TINY
from tests.helpers import QUICK

SHAPE = (2, 32, 40)


@pytest.fixture(scope="module")
def model():
    model = DANet(num_classes=4, dropout=0.0, **TINY)
    model.compile(max_iterations=100, **QUICK)
    return model


def _images(count=2):
    return np.random.default_rng(0).uniform(0, 255, (count, *SHAPE[1:], 3)).astype("float32")


def _labels(count=2, value=None):
    labels = np.random.default_rng(1).integers(0, 4, (count, *SHAPE[1:])).astype("uint8")
    if value is not None:
        labels[:, :4, :4] = value
    return labels


@pytest.mark.parametrize(
    "labels, message",
    [
        (_labels().astype("float32"), "labels must be integer class indices, got float32"),
        (_labels(value=9), r"label values 9 are not classes of this 4-class model"),
        (_labels().astype("int32") - (_labels() == 0), r"label values -1 .*\(not -1\)"),
    ],
    ids=["float", "beyond-the-classes", "minus-one"],
)
def test_wrong_label_arrays_are_refused_before_training(model, labels, message):
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        model.fit(_images(), labels, batch_size=2, verbose=0)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_wrong_validation_labels_are_refused(model):
    with pytest.raises(ValueError, match=r"validation_data=.*label values 9"):
        model.fit(
            _images(),
            _labels(),
            validation_data=(_images(), _labels(value=9)),
            batch_size=2,
            verbose=0,
        )


def test_float_label_tensors_are_refused_by_the_loss():
    logits = keras.ops.zeros((*SHAPE, 4))
    with pytest.raises(ValueError, match="Labels must be integer class indices"):
        DANetLoss()(keras.ops.zeros(SHAPE, "float32"), logits)


def test_labels_of_the_wrong_rank_are_refused(model):
    with pytest.raises(ValueError, match=r"Labels must be class maps .*got shape \(2, 32, 40, 3\)"):
        model.fit(_images(), np.zeros((*SHAPE, 3), np.uint8), batch_size=2, verbose=0)


def test_an_all_ignored_batch_trains_with_zero_loss(model):
    history = model.fit(_images(), np.full(SHAPE, 255, np.uint8), batch_size=2, verbose=0)
    assert history.history["loss"] == [0.0]
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_batch_size_one(model):
    history = model.fit(_images(2), _labels(2), batch_size=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_an_empty_training_set_is_named(model):
    with pytest.raises(ValueError, match="no training batches"):
        model.fit(_images(0), _labels(0), batch_size=2, verbose=0)


def test_a_learning_rate_that_diverges_stops_fit_at_the_first_nan_loss():
    diverging = DANet(num_classes=4, dropout=0.0, **TINY)
    diverging.compile(learning_rate=1e30, max_iterations=100, **QUICK)
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch"):
        diverging.fit(_images(8), _labels(8), batch_size=2, epochs=3, verbose=0)
    steps = int(keras.ops.convert_to_numpy(diverging.optimizer.iterations))
    assert steps < 12  # stopped, not 3 epochs of NaN updates


@pytest.mark.parametrize("bad", [2.7, "x", True, 0])
def test_num_classes_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="num_classes must be a positive whole number"):
        DANet(num_classes=bad, **TINY)


def test_a_loss_grown_tenfold_is_warned_about_once():
    from keras_danet.training import LossGrowthWarning

    callback = LossGrowthWarning()
    callback.on_train_begin()
    for batch, loss in enumerate([2.0, 5.0, 19.9]):
        callback.on_train_batch_end(batch, {"loss": loss})
    with pytest.warns(RuntimeWarning, match="grown from 2 to 20.5 by batch 3: training is"):
        callback.on_train_batch_end(3, {"loss": 20.5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_batch_end(4, {"loss": 40.0})  # once is enough


def test_fit_runs_the_loss_growth_warning_it_is_given(model):
    from keras_danet.training import LossGrowthWarning

    callback = LossGrowthWarning(factor=1e6)  # in place of the default one, not beside it
    model.fit(_images(), _labels(), batch_size=2, verbose=0, callbacks=[callback])
    assert callback._first is not None and np.isfinite(callback._first)


# Labels and images arriving by every other path than arrays: each batch is checked on its
# way in, before the step (a bad label inside it: NaN on JAX, "GatherV2" on TensorFlow, a
# wrong finite loss on PyTorch).


def _generator(labels, images=None):
    def batches():
        yield (_images() if images is None else images), labels

    return batches()


class _Batches(keras.utils.PyDataset):
    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = images, labels

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.images, self.labels


def _tf_data(images, labels):
    import tensorflow as tf

    return tf.data.Dataset.from_tensors((images, labels))


def _torch_loader(images, labels):
    import torch

    pairs = list(zip(torch.from_numpy(images), torch.from_numpy(labels), strict=True))
    return torch.utils.data.DataLoader(pairs, batch_size=len(pairs))


SOURCES = {
    "generator": lambda images, labels: _generator(labels, images),
    "PyDataset": _Batches,
    "tf.data": _tf_data,
    "torch-DataLoader": _torch_loader,
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    "images, labels, message",
    [
        (_images(), _labels(value=7), r"fit\(\), batch 0: label values 7 are not classes of "),
        (_images(), _labels().astype("int32") - 1, r"batch 0: label values -1 are"),
        (
            _images(),
            _labels().astype("float32") + 0.5,
            r"batch 0: labels must be integer class indices, got float32 holding 0.5, 1.5",
        ),
        (
            np.where(np.arange(2)[:, None, None, None] == 1, np.nan, _images()),
            _labels(),
            r"batch 0: the images hold 3840 NaN and 0 infinite values \(image 1 of the batch\)",
        ),
    ],
    ids=["beyond-the-classes", "minus-one", "fractional", "nan-images"],
)
def test_every_data_source_is_checked_before_the_step(model, source, images, labels, message):
    images = images.astype("float32")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        model.fit(SOURCES[source](images, labels), epochs=1, verbose=0)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


class _WeightsAtValidation(keras.callbacks.Callback):
    def on_test_begin(self, logs=None):
        self.weights = self.model.get_weights()


@pytest.mark.parametrize("source", ["generator", "tf.data"])
def test_validation_batches_and_evaluate_are_checked(model, source):
    good, bad = _labels(), _labels(value=7)
    seen = _WeightsAtValidation()
    with pytest.raises(ValueError, match=r"fit\(validation_data=...\), batch 0: label values 7"):
        model.fit(
            SOURCES[source](_images(), good),
            validation_data=SOURCES[source](_images(), bad),
            verbose=0,
            callbacks=[seen],
        )
    # The step trained before validation is kept (JAX's trainer had emptied the model).
    trained = model.get_weights()
    for got, want in zip(trained, seen.weights, strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"evaluate\(\), batch 0: label values 7"):
        model.evaluate(SOURCES[source](_images(), bad), verbose=0)
    for got, want in zip(model.get_weights(), trained, strict=True):
        np.testing.assert_array_equal(got, want)
    assert np.isfinite(model.predict(_images(), verbose=0)).all()


def test_good_batches_from_every_source_train(model):
    for source, make in SOURCES.items():
        history = model.fit(make(_images(), _labels(value=255)), verbose=0)
        assert np.isfinite(history.history["loss"][0]), source


def test_nan_image_arrays_are_named_before_training(model):
    images = _images()
    images[1, 3, 4, 0] = np.inf
    with pytest.raises(ValueError, match=r"fit\(\)\(x=...\), images 0\+: .* 1 infinite values"):
        model.fit(images, _labels(), batch_size=2, verbose=0)


def test_a_dataset_with_more_classes_than_the_model_is_refused(model, tmp_path):
    from keras_danet.data import folder, save_synthetic_scenes

    save_synthetic_scenes(tmp_path, 4, height=32, width=40)
    names = [f"class{i}" for i in range(6)]
    train = folder(
        tmp_path / "images", tmp_path / "masks", ".png", ".png", class_names=names, split="val"
    )
    with pytest.raises(ValueError, match=r"has 6 classes but the model has 4.*reset_classifier"):
        model.fit(train, verbose=0)
    with pytest.raises(ValueError, match=r"evaluate\(\): the dataset .* has 6 classes"):
        model.evaluate(train, verbose=0)


def test_an_unreadable_first_image_leaves_the_model_whole(model, tmp_path):
    # JAX's trainer empties the model's variables before reading the first batch.
    from keras_danet.data import DataError, folder, save_synthetic_scenes

    save_synthetic_scenes(tmp_path, 2, height=32, width=40)
    names = [f"class{i}" for i in range(4)]
    train = folder(
        tmp_path / "images", tmp_path / "masks", ".png", ".png", class_names=names, split="val"
    )
    (tmp_path / "images" / "scene_00000.png").write_bytes(b"not a png")
    before = model.get_weights()
    with pytest.raises(DataError, match="scene_00000.png is not a readable image"):
        model.fit(train, verbose=0, shuffle=False)
    with pytest.raises(DataError, match="scene_00000.png is not a readable image"):
        model.evaluate(train, verbose=0)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data is TensorFlow's")
def test_checked_tensorflow_batches_are_not_autotuned():
    # An autotuned tf.data iterator can block for up to a minute when deleted on a busy CPU
    # (keras_danet/training/input_check.py says why); fit's and evaluate's are not autotuned.
    from keras.src.trainers.data_adapters import get_data_adapter

    from keras_danet.training.input_check import CheckedBatches

    adapter = get_data_adapter(_images(4), _labels(4), batch_size=2)
    dataset = CheckedBatches(adapter, 4, "training data").get_tf_dataset()
    assert dataset.options().autotune.enabled is False
    assert [images.shape[0] for images, _ in dataset] == [2, 2]
