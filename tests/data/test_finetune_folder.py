"""Fine-tuning on your own folder of images and masks, end to end, as the README shows it."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_danet import DANet, convert_mmseg_checkpoint, data
from tests.conftest import fixture_path

CLASSES = ("sky", "ground", "object")
PALETTE = ((70, 130, 180), (128, 64, 128), (220, 20, 60))


def _write_three_class_folder(root, count=12):
    """Generated scenes with road and grass merged into "ground", and a split file."""
    images, labels = data.synthetic_scenes(count, 64, 96, seed=4)
    merged = np.array([0, 1, 1, 2] + [255] * 252, np.uint8)[labels]
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for index, (image, label) in enumerate(zip(images, merged, strict=True)):
        Image.fromarray(image).save(os.path.join(root, "images", f"{index:03d}.png"))
        Image.fromarray(label).save(os.path.join(root, "masks", f"{index:03d}.png"))
    with open(os.path.join(root, "train.txt"), "w") as file:
        file.write("".join(f"{index:03d}\n" for index in range(count)))
    return root


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("presets") / "tiny_cityscapes")
    convert_mmseg_checkpoint(fixture_path("danet_r50_tiny")).save_to_preset(folder)
    return folder


def test_fine_tune_a_preset_on_a_folder_dataset(tmp_path, tiny_preset):
    root = _write_three_class_folder(str(tmp_path / "mine"))
    train = data.folder(
        f"{root}/images",
        f"{root}/masks",
        ".png",
        ".png",
        split_file=f"{root}/train.txt",
        class_names=CLASSES,
        palette=PALETTE,
        batch_size=4,
        crop_size=(48, 64),
        scale=(96, 64),
        workers=1,
    )
    model = DANet.from_preset(tiny_preset, num_classes=3)
    assert model.preset_metadata["pretrained"] == "tiny_cityscapes"
    # Compiled as users run it: 24 steps traced once are quicker than 24 eager ones on
    # TensorFlow (30 s against 50 s here).
    model.compile(learning_rate=0.02)
    # 24 steps: with PyTorch's init of the PAM/CAM classifiers (as mmseg), 15 steps left
    # PyTorch's seeded run at 0.855 x the first loss, just above the bar.
    history = model.fit(train, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.85 * losses[0], losses

    model.save_to_preset(str(tmp_path / "my_danet"), dataset=train)
    restored = DANet.from_preset(str(tmp_path / "my_danet"))
    # Compiled from the saved recipe with its optimizer's step count back, but not trained.
    assert restored.training_run() is None
    image, _ = train.sample(0)
    expected = model.predict(image[None].astype("float32"), verbose=0)
    # Same weights, two separately compiled predict graphs: fused ops may round differently
    # (3e-6 relative seen on TensorFlow).
    np.testing.assert_allclose(
        restored.predict(image[None].astype("float32"), verbose=0), expected, rtol=2e-5, atol=1e-5
    )
    assert restored.preset_metadata["class_names"] == list(CLASSES)
    assert restored.preset_metadata["palette"] == [list(color) for color in PALETTE]
    with open(tmp_path / "my_danet" / "metadata.json") as file:
        record = json.load(file)
    assert record["dataset"] == "mine"  # "mine/images": the folder, not "images"
    # This run, not the converted checkpoint's: 8 epochs x 3 steps, its last loss.
    run = record["training"]
    assert run["steps"] == 24 and run["optimizer"] == "TorchSGD"
    assert run["schedule"]["class"] == "PolyDecay" and run["learning_rate"] == 0.02
    assert run["final_loss"] == pytest.approx(losses[-1], rel=1e-5)
    assert record["pretrained"] == "tiny_cityscapes" and "metrics" not in record


def test_saving_with_a_dataset_of_other_classes_is_refused(tmp_path, tiny_preset):
    model = DANet.from_preset(tiny_preset)
    from keras_danet.dataset_info import SYNTHETIC_SCENES

    with pytest.raises(ValueError, match="has 4 classes; the model has 19"):
        model.save_to_preset(str(tmp_path / "x"), dataset=SYNTHETIC_SCENES)
