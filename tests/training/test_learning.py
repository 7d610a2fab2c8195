"""DANet learns: from scratch on generated scenes (slow), and fine-tuned from a preset."""

import time

import keras
import numpy as np
import pytest

from keras_danet import DANet, convert_mmseg_checkpoint
from keras_danet.data import synthetic_scenes
from tests.conftest import fixture_path
from tests.helpers import QUICK

# Small widths that still learn the scenes in a CPU minute: 1/4 of mmseg's stem and base,
# 1/16 of its head.
SMALL = dict(stem_channels=16, base_channels=8, head_channels=32, pam_channels=8, aux_channels=16)
HELD_OUT_MIOU = 0.80


@pytest.mark.slow
def test_learns_generated_scenes_from_scratch_with_the_compile_defaults():
    images, labels = synthetic_scenes(256, 64, 96, seed=1)
    held_out_images, held_out_labels = synthetic_scenes(64, 64, 96, seed=2)
    model = DANet(num_classes=4, **SMALL)
    model.compile()
    started = time.perf_counter()
    history = model.fit(images, labels, batch_size=8, epochs=20, verbose=0)
    seconds = time.perf_counter() - started
    result = model.evaluate(held_out_images, held_out_labels, verbose=0, return_dict=True)
    print(
        f"\n{keras.backend.backend()}: 640 steps in {seconds:.0f} s, train loss "
        f"{history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}, held-out "
        f"mIoU {result['mean_iou']:.3f}"
    )
    assert result["mean_iou"] >= HELD_OUT_MIOU


def test_fine_tunes_a_converted_checkpoint_on_new_classes(tmp_path):
    converted = convert_mmseg_checkpoint(fixture_path("danet_r50_tiny"))
    converted.save_to_preset(tmp_path / "preset")
    model = DANet.from_preset(str(tmp_path / "preset"), num_classes=4)
    assert model.num_classes == 4
    model.compile(learning_rate=0.05, **QUICK)
    images, labels = synthetic_scenes(8, 64, 96, seed=3)
    history = model.fit(images, labels, batch_size=4, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.9 * losses[0]
    logits = model.predict(images[:1], verbose=0)
    assert logits.shape == (1, 64, 96, 4)
