import re

import pytest

import keras_danet
from keras_danet import DANet
from keras_danet.dataset_info import ADE20K, CITYSCAPES, VOC12AUG
from keras_danet.presets import ALIASES, PRESETS
from tests.conftest import fixture_path


def test_sixteen_checkpoints_by_dataset():
    assert len(PRESETS) == 16
    counts = {}
    for preset in PRESETS.values():
        counts[preset.dataset.name] = counts.get(preset.dataset.name, 0) + 1
    assert counts == {"cityscapes": 8, "ade20k": 4, "voc12aug": 4}


def test_every_preset_is_complete():
    url = re.compile(
        r"https://download\.openmmlab\.com/mmsegmentation/v0\.5/danet/"
        r"(danet_r(50|101)-d8_\w+)/\1_\d{8}_\d{6}-[0-9a-f]{8}\.pth"
    )
    for name, preset in PRESETS.items():
        assert name == preset.name and name.startswith(f"danet_r{preset.depth}_d8_")
        assert url.fullmatch(preset.checkpoint_url), preset.checkpoint_url
        assert preset.checkpoint_url.endswith(f"-{preset.sha256_prefix}.pth")
        assert len(preset.class_names) == len(preset.palette) == preset.num_classes
        assert preset.license == "Apache-2.0"
        assert preset.hub_repo == f"keras-danet/{name}" and preset.hub_revision
        assert preset.test_mode in ("whole", "slide")
        # The 769x769 configs slide with align_corners; the others run whole images.
        assert preset.align_corners == (preset.crop_size == (769, 769))
        assert (preset.test_mode == "slide") == preset.align_corners
        assert 40 < preset.miou < 81


def test_aliases_name_the_best_single_scale_checkpoint():
    assert sorted(ALIASES) == sorted(
        f"danet_r{d}_{s}" for d in (50, 101) for s in ("cityscapes", "ade20k", "voc12aug")
    )
    for alias, name in ALIASES.items():
        target = PRESETS[name]
        rivals = [
            p for p in PRESETS.values() if p.depth == target.depth and p.dataset is target.dataset
        ]
        assert target.miou == max(p.miou for p in rivals)
        assert DANet.presets[alias] is target
    assert DANet.presets["danet_r101_cityscapes"].miou == 80.52


def test_list_presets():
    names = keras_danet.list_presets()
    assert names[:16] == list(PRESETS)
    assert names[16] == "danet_demo_shapes" and names[17:] == list(ALIASES)
    assert keras_danet.list_presets(include_aliases=False) == [*PRESETS, "danet_demo_shapes"]


def test_unknown_name_suggests_close_names():
    with pytest.raises(KeyError, match="Did you mean 'danet_r50_cityscapes'"):
        DANet.presets["danet_r50_citiscapes"]
    with pytest.raises(keras_danet.PresetError, match="Did you mean 'danet_r101_ade20k'"):
        DANet.from_preset("danet_r101_ade2k")


def test_dataset_metadata():
    assert (CITYSCAPES.num_classes, ADE20K.num_classes, VOC12AUG.num_classes) == (19, 150, 21)
    assert ADE20K.class_names[7] == "bed "  # mmseg's spelling, trailing space included
    assert VOC12AUG.palette[0] == (0, 0, 0) and VOC12AUG.class_names[0] == "background"


def test_cityscapes_classes_equal_those_mmseg_wrote_into_a_checkpoint():
    torch = pytest.importorskip("torch")
    meta = torch.load(fixture_path("danet_r50_tiny"), weights_only=True)["meta"]
    assert tuple(meta["CLASSES"]) == CITYSCAPES.class_names
    assert [tuple(color) for color in meta["PALETTE"]] == list(CITYSCAPES.palette)
