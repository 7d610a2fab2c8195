import re

import pytest

import keras_danet
from keras_danet import DANet, ResNetV1c
from keras_danet.dataset_info import ADE20K, CITYSCAPES, VOC12AUG
from keras_danet.presets import ALIASES, PRESETS, BundledFolder, MmsegCheckpoint, Preset
from tests.conftest import fixture_path

MMSEG_DANETS = [
    preset
    for preset in PRESETS.values()
    if preset.architecture == "DANet" and isinstance(preset.source, MmsegCheckpoint)
]


def test_one_table_of_every_kind_of_weights():
    assert len(PRESETS) == 19
    assert [p.name for p in PRESETS.where(architecture="ResNetV1c")] == [
        "resnet50_v1c",
        "resnet101_v1c",
    ]
    assert [p.name for p in PRESETS.values() if isinstance(p.source, BundledFolder)] == [
        "danet_demo_shapes"
    ]
    assert DANet.presets is PRESETS and ResNetV1c.presets is PRESETS


def test_sixteen_checkpoints_by_dataset():
    assert len(MMSEG_DANETS) == 16
    counts = {}
    for preset in MMSEG_DANETS:
        counts[preset.dataset.name] = counts.get(preset.dataset.name, 0) + 1
    assert counts == {"cityscapes": 8, "ade20k": 4, "voc12aug": 4}


def test_every_preset_is_complete():
    url = re.compile(
        r"https://download\.openmmlab\.com/mmsegmentation/v0\.5/danet/"
        r"(danet_r(50|101)-d8_\w+)/\1_\d{8}_\d{6}-[0-9a-f]{8}\.pth"
    )
    for preset in MMSEG_DANETS:
        name = preset.name
        assert name == preset.name and name.startswith(f"danet_r{preset.depth}_d8_")
        assert url.fullmatch(preset.source.url()), preset.source.url()
        assert preset.source.url().endswith(f"-{preset.source.sha256_prefix}.pth")
        assert len(preset.dataset.class_names) == len(preset.dataset.palette) == preset.num_classes
        assert preset.license == "Apache-2.0"
        assert preset.hub.repo == f"keras-danet/{name}" and preset.hub.revision
        assert preset.test.mode in ("whole", "slide")
        # The 769x769 configs slide with align_corners; the others run whole images.
        assert preset.config["align_corners"] == (preset.training["crop_size"] == (769, 769))
        assert (preset.test.mode == "slide") == preset.config["align_corners"]
        assert 40 < preset.metrics["mIoU"] < 81


def test_aliases_name_the_best_single_scale_checkpoint():
    assert sorted(ALIASES) == sorted(
        f"danet_r{d}_{s}" for d in (50, 101) for s in ("cityscapes", "ade20k", "voc12aug")
    )
    for alias, name in ALIASES.items():
        target = PRESETS[name]
        rivals = [
            p for p in MMSEG_DANETS if p.depth == target.depth and p.dataset is target.dataset
        ]
        assert target.metrics["mIoU"] == max(p.metrics["mIoU"] for p in rivals)
        assert DANet.presets[alias] is target
    assert DANet.presets["danet_r101_cityscapes"].metrics["mIoU"] == 80.52


def test_list_presets():
    names = keras_danet.list_presets()
    assert names[:16] == [p.name for p in MMSEG_DANETS]
    assert names[16:19] == ["danet_demo_shapes", "resnet50_v1c", "resnet101_v1c"]
    assert names[19:] == list(ALIASES)
    assert keras_danet.list_presets(include_aliases=False) == names[:19] == list(PRESETS)
    for name in names:  # every name listed is described by the table
        assert isinstance(DANet.presets[name], Preset) and name in DANet.presets


def test_unknown_name_suggests_close_names_never_itself():
    with pytest.raises(KeyError, match="Did you mean 'danet_r50_cityscapes'"):
        DANet.presets["danet_r50_citiscapes"]
    with pytest.raises(keras_danet.PresetError, match="Did you mean 'danet_r101_ade20k'"):
        DANet.from_preset("danet_r101_ade2k")
    with pytest.raises(KeyError, match="Did you mean 'resnet50_v1c'"):
        DANet.presets["resnet50_v1"]
    message = keras_danet.presets.table.unknown_preset_message("danet_demo_shapes")
    assert "'danet_demo_shapes'?" not in message and " or 'danet_demo_shapes'" not in message


def test_bundled_row_describes_the_bundled_folder():
    row = DANet.presets["danet_demo_shapes"]
    folder = Preset.from_folder(row.source.folder)
    assert folder.config == row.config  # the table's architecture is the folder's
    assert folder.dataset.class_names == row.dataset.class_names
    assert folder.dataset.palette == row.dataset.palette
    assert folder.metrics == row.metrics and folder.test == row.test
    assert folder.name == row.name and folder.architecture == "DANet"


def test_backbone_rows_point_at_mmseg_imagenet_weights():
    # mmengine/hub/openmmlab.json: open-mmlab://resnet{50,101}_v1c.
    for depth, digest in ((50, "2cccc1ad"), (101, "e67eebb6")):
        preset = ResNetV1c.presets[f"resnet{depth}_v1c"]
        assert preset.source.url() == (
            f"https://download.openmmlab.com/pretrain/third_party/resnet{depth}_v1c-{digest}.pth"
        )
        assert preset.source.sha256_prefix == digest and preset.depth == depth
        assert preset.dataset is None and preset.num_classes is None


def test_metadata_of_a_record_reads_back_as_the_record(tmp_path):
    import json

    preset = DANet.presets["danet_r101_cityscapes"]
    metadata = preset.metadata()
    assert metadata["miou"] == 80.52 and metadata["test_mode"] == "whole"
    assert metadata["source"] == {"kind": "mmseg_checkpoint", "url": preset.source.url()}
    folder = tmp_path / "preset"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(metadata))
    config = {"registered_name": "keras_danet>DANet", "config": dict(preset.config)}
    (folder / "config.json").write_text(json.dumps(config))
    again = Preset.from_folder(folder)
    for field in ("name", "architecture", "config", "test", "metrics", "license", "hub"):
        assert getattr(again, field) == getattr(preset, field), field
    assert again.dataset.class_names == preset.dataset.class_names
    assert dict(again.training) == {
        k: list(v) if isinstance(v, tuple) else v for k, v in preset.training.items()
    }


def test_dataset_metadata():
    assert (CITYSCAPES.num_classes, ADE20K.num_classes, VOC12AUG.num_classes) == (19, 150, 21)
    assert ADE20K.class_names[7] == "bed "  # mmseg's spelling, trailing space included
    assert VOC12AUG.palette[0] == (0, 0, 0) and VOC12AUG.class_names[0] == "background"


def test_cityscapes_classes_equal_those_mmseg_wrote_into_a_checkpoint():
    torch = pytest.importorskip("torch")
    meta = torch.load(fixture_path("danet_r50_tiny"), weights_only=True)["meta"]
    assert tuple(meta["CLASSES"]) == CITYSCAPES.class_names
    assert [tuple(color) for color in meta["PALETTE"]] == list(CITYSCAPES.palette)
