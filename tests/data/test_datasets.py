"""The dataset readers: layouts, label rules, clear errors, determinism, the check pass."""

import os

import numpy as np
import pytest
from PIL import Image

from keras_danet import data
from keras_danet.data import DataError
from keras_danet.dataset_info import ADE20K, CITYSCAPES

SMALL = dict(crop_size=(24, 32), scale=(64, 40), workers=1)


def _save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def _image(seed, height=40, width=60):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3))


def _labels(seed, high, height=40, width=60):
    rng = np.random.default_rng(seed)
    label = np.repeat(np.repeat(rng.integers(0, high, (4, 6)), 10, 0), 10, 1)
    return label[:height, :width]


def make_cityscapes(root, count=3, train_ids=True, split="train"):
    for index in range(count):
        city = "aachen" if index % 2 else "bremen"
        stem = f"{city}_{index:06d}_000019"
        _save(f"{root}/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png", _image(index))
        ids = _labels(index, 34)
        _save(f"{root}/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png", ids)
        if train_ids:
            table = np.full(256, 255)
            for label_id, train_id in data.datasets.CITYSCAPES_TRAIN_IDS.items():
                table[label_id] = train_id
            _save(f"{root}/gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png", table[ids])
    return root


def test_cityscapes_layout_and_training_batches(tmp_path):
    root = make_cityscapes(str(tmp_path))
    train = data.cityscapes(root, "train", batch_size=2, **SMALL)
    assert train.info is CITYSCAPES and len(train.files) == 3 and len(train) == 1
    assert [os.path.basename(f[0]) for f in train.files] == sorted(
        os.path.basename(f[0]) for f in train.files
    )
    images, labels = train[0]
    assert images.shape == (2, 24, 32, 3) and images.dtype == np.float32
    assert labels.shape == (2, 24, 32) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(range(19)) | {255}
    whole = data.cityscapes(root, "train", augment=False)
    image, label = whole[0]
    assert image.shape == (1, 40, 60, 3) and image.dtype == np.uint8 and label.shape == (1, 40, 60)


def test_cityscapes_label_ids_are_converted_on_request(tmp_path):
    root = make_cityscapes(str(tmp_path), train_ids=False)
    with pytest.raises(DataError, match="convert_cityscapes_label_ids"):
        data.cityscapes(root, "train")
    assert data.convert_cityscapes_label_ids(root, progress=False) == 3
    assert data.convert_cityscapes_label_ids(root, progress=False) == 0  # already there
    train = data.cityscapes(root, "train", augment=False)
    ids = np.array(Image.open(train.files[0][1].replace("labelTrainIds", "labelIds")))
    _, train_ids = train.sample(0)
    assert np.all(train_ids[ids == 7] == 0) and np.all(train_ids[ids == 26] == 13)
    assert np.all(train_ids[ids == 33] == 18) and np.all(train_ids[ids == 0] == 255)
    assert np.all(train_ids[ids == 4] == 255)  # "static": not evaluated


def test_ade20k_reduces_the_zero_label(tmp_path):
    root = str(tmp_path)
    stored = _labels(0, 151)
    stored[0, :5] = 0
    _save(f"{root}/images/validation/ADE_val_00000001.jpg", _image(0))
    _save(f"{root}/annotations/validation/ADE_val_00000001.png", stored)
    val = data.ade20k(root, "val")
    assert val.info is ADE20K and val.augmentation is None
    _, label = val.sample(0)
    expected = np.where(stored == 0, 255, stored - 1)
    np.testing.assert_array_equal(label, expected)


def make_voc(root, names, aug_names):
    for name in names + aug_names:
        _save(f"{root}/JPEGImages/{name}.jpg", _image(len(name)))
    sets = f"{root}/ImageSets/Segmentation"
    os.makedirs(sets, exist_ok=True)
    for name in names:
        _save(f"{root}/SegmentationClass/{name}.png", _labels(1, 21))
    for name in aug_names:
        _save(f"{root}/SegmentationClassAug/{name}.png", _labels(2, 21))
    with open(f"{sets}/train.txt", "w") as file:
        file.write("\n".join(names[:2]) + "\n")
    with open(f"{sets}/val.txt", "w") as file:
        file.write(names[2] + "\n")
    return sets


def test_voc12aug_concatenates_train_and_aug(tmp_path):
    root = str(tmp_path)
    sets = make_voc(root, ["2007_000032", "2007_000039", "2007_000063"], ["2008_000002"])
    with pytest.raises(DataError, match="voc_aug.py"):
        data.voc12aug(root, "train")
    with open(f"{sets}/aug.txt", "w") as file:
        file.write("2008_000002\n")
    train = data.voc12aug(root, "train", **SMALL)
    assert [os.path.relpath(label, root) for _, label in train.files] == [
        "SegmentationClass/2007_000032.png",
        "SegmentationClass/2007_000039.png",
        "SegmentationClassAug/2008_000002.png",
    ]
    assert len(data.voc12aug(root, "val").files) == 1
    # VOC's config pads crops with Pad(size=crop_size) before normalising; the others do not.
    assert train.augmentation.pad_to_crop
    assert not data.Augmentation(scale=(64, 40), crop_size=(24, 32)).pad_to_crop


def test_folder_with_split_file_suffixes_and_palette(tmp_path):
    scenes = data.save_synthetic_scenes(str(tmp_path / "scenes"), 8, 40, 60, seed=1)
    names = ("sky", "road", "grass", "object")
    train = data.folder(
        f"{scenes}/images",
        f"{scenes}/masks",
        ".png",
        ".png",
        split_file=f"{scenes}/train.txt",
        class_names=names,
        batch_size=2,
        **SMALL,
    )
    assert len(train.files) == 6 and train.info.class_names == names
    assert len(train.info.palette) == 4  # mmseg's random palette for an unknown dataset
    images, labels = train[0]
    assert images.shape == (2, 24, 32, 3)
    val = data.folder(
        f"{scenes}/images", f"{scenes}/masks", ".png", ".png", class_names=names, split="val"
    )
    assert val.augmentation is None and len(val.files) == 8
    with pytest.raises(ValueError, match="class_names"):
        data.folder(f"{scenes}/images", f"{scenes}/masks", ".png", ".png")


@pytest.fixture
def scenes(tmp_path):
    return data.save_synthetic_scenes(str(tmp_path / "scenes"), 6, 40, 60, seed=2)


def _folder(scenes, **options):
    return data.folder(
        f"{scenes}/images",
        f"{scenes}/masks",
        ".png",
        ".png",
        class_names=("a", "b", "c", "d"),
        **options,
    )


def test_missing_mask_is_named(scenes):
    os.remove(f"{scenes}/masks/scene_00003.png")
    with pytest.raises(DataError, match="scene_00003.png"):
        _folder(scenes)


def test_empty_split_names_the_folder_and_suffix(scenes):
    with pytest.raises(DataError, match=r"No files ending in '\.jpg' under .*images"):
        data.folder(f"{scenes}/images", f"{scenes}/masks", ".jpg", ".png", class_names=["a"])


def test_mask_of_another_size_is_named(scenes):
    _save(f"{scenes}/masks/scene_00002.png", np.zeros((20, 60)))
    val = _folder(scenes, split="val")
    with pytest.raises(DataError, match=r"scene_00002.png is 20x60 but its image is 40x60"):
        val.sample(2)


def test_label_values_beyond_the_classes_are_named(scenes):
    label = np.zeros((40, 60))
    label[0, 0], label[1, 1] = 7, 255
    _save(f"{scenes}/masks/scene_00001.png", label)
    with pytest.raises(DataError, match=r"scene_00001.png has label values 7,"):
        _folder(scenes, split="val").sample(1)


def test_corrupt_image_is_named(scenes):
    with open(f"{scenes}/images/scene_00004.png", "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="scene_00004.png is not a readable image"):
        _folder(scenes, split="val").sample(4)


def test_check_reports_every_problem_with_class_frequencies(scenes):
    _save(f"{scenes}/masks/scene_00002.png", np.zeros((20, 60)))
    label = np.zeros((40, 60))
    label[0, 0] = 9
    _save(f"{scenes}/masks/scene_00001.png", label)
    with open(f"{scenes}/images/scene_00004.png", "wb") as file:
        file.write(b"not an image")
    report = _folder(scenes).check(progress=False)
    assert not report.ok
    messages = " ".join(message for _, message in report.problems)
    for fragment in ("scene_00001.png has label values 9", "scene_00002.png is 20x60"):
        assert fragment in messages
    assert "scene_00004.png is not a readable image" in messages
    assert report.pixel_counts.shape == (4,) and report.pixel_counts.sum() > 0
    np.testing.assert_allclose(report.frequencies.sum(), 1.0)
    assert "problem:" in str(report) and "share" in str(report)
    clean = _folder(data.save_synthetic_scenes(str(scenes) + "_clean", 3, 40, 60, seed=3))
    assert clean.check(progress=False).ok


def test_batches_depend_on_seed_epoch_and_index_only(scenes):
    one = _folder(scenes, batch_size=2, seed=5, **SMALL)
    two = _folder(scenes, batch_size=2, seed=5, **{**SMALL, "workers": 2})
    for index in range(len(one)):
        for a, b in zip(one[index], two[index], strict=True):
            np.testing.assert_array_equal(a, b)
    first = one[0]
    one.on_epoch_end()  # a new epoch: a new order and new draws
    assert not np.array_equal(one[0][0], first[0])
    other_seed = _folder(scenes, batch_size=2, seed=6, **SMALL)
    assert not np.array_equal(other_seed[0][0], first[0])
    assert len(one) == 3 and len(_folder(scenes, batch_size=4, **SMALL)) == 1  # whole batches


def test_a_folder_lists_its_files_in_mmseg_order(tmp_path):
    # mmseg's BaseSegDataset on the same files (tools/mmseg_inference_reference.py): sorted by
    # the whole image path, so "a-1.jpg" before "a.jpg"; hidden files skipped, hidden and
    # nested folders walked.
    import json

    from tests.conftest import FIXTURES

    with open(os.path.join(FIXTURES, "evaluation", "cases.json")) as file:
        spec = json.load(file)["folder_order"]
    suffix, mask_suffix = spec["img_suffix"], spec["seg_map_suffix"]
    for name in spec["files"]:
        for path in (
            tmp_path / "images" / name,
            tmp_path / "masks" / (name.removesuffix(suffix) + mask_suffix),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    dataset = data.folder(
        str(tmp_path / "images"),
        str(tmp_path / "masks"),
        suffix,
        mask_suffix,
        class_names=["a", "b"],
        split="val",
    )
    images = [os.path.relpath(image, tmp_path / "images") for image, _ in dataset.files]
    masks = [os.path.relpath(mask, tmp_path / "masks") for _, mask in dataset.files]
    assert images == spec["images"]
    assert masks == spec["masks"]
    assert images.index("a-1.jpg") < images.index("a.jpg")


def _mmseg_case(name):
    import json

    from tests.conftest import FIXTURES

    folder = os.path.join(FIXTURES, "evaluation")
    with open(os.path.join(folder, "cases.json")) as file:
        spec = json.load(file)[f"classes_{name}"]
    arrays = np.load(os.path.join(folder, "reference.npz"))
    label = np.array(Image.open(os.path.join(folder, spec["file"])))
    prefix = f"classes_{name}_"
    reference = {k.removeprefix(prefix): arrays[k] for k in arrays.files if k.startswith(prefix)}
    return spec, reference, label


@pytest.mark.parametrize("name", ["cityscapes", "ade20k"])
def test_a_class_subset_reads_labels_classes_and_palette_as_mmseg(tmp_path, name):
    """mmseg 1.2.2's CityscapesDataset / ADE20KDataset with metainfo=dict(classes=...), a
    re-ordered subset: its LoadAnnotations' label maps (ADE20K's reduce_zero_label first),
    classes, palette, and IoUMetric on those labels."""
    from keras_danet.metrics import SegmentationMetrics

    spec, reference, stored = _mmseg_case(name)
    image = _image(0, *stored.shape)
    if name == "cityscapes":
        _save(f"{tmp_path}/leftImg8bit/val/city/x_leftImg8bit.png", image)
        _save(f"{tmp_path}/gtFine/val/city/x_gtFine_labelTrainIds.png", stored)
        dataset = data.cityscapes(str(tmp_path), "val", classes=spec["classes"])
    else:
        _save(f"{tmp_path}/images/validation/x.jpg", image)
        _save(f"{tmp_path}/annotations/validation/x.png", stored)
        dataset = data.ade20k(str(tmp_path), "val", classes=spec["classes"])
    _, label = dataset.sample(0)
    np.testing.assert_array_equal(label, reference["label"])
    assert list(dataset.info.class_names) == spec["classes"]
    assert [list(color) for color in dataset.info.palette] == spec["palette"]
    assert dataset.num_classes == len(spec["classes"])
    metrics = SegmentationMetrics(dataset.num_classes).update(reference["prediction"], label)
    result = metrics.result()
    np.testing.assert_allclose(result.iou, reference["iou"], rtol=1e-6)
    np.testing.assert_allclose(result.accuracy, reference["acc"], rtol=1e-6)
    np.testing.assert_allclose(result.aacc, reference["aacc"], rtol=1e-6)
    # The options travel with the dataset; the check pass counts the chosen classes.
    same = dataset.with_options(batch_size=1)
    assert same.info == dataset.info and same.classes == dataset.classes
    report = dataset.check(progress=False)
    assert report.class_names == dataset.info.class_names and not report.problems
    counts = np.bincount(label.ravel(), minlength=256)
    np.testing.assert_array_equal(report.pixel_counts, counts[: dataset.num_classes])


def test_a_class_subset_is_checked_and_bad_labels_are_still_named(tmp_path):
    make_cityscapes(str(tmp_path), count=1)
    with pytest.raises(ValueError, match=r"'cars' \(did you mean \['car'\]\?\) is not among"):
        data.cityscapes(str(tmp_path), classes=["road", "cars"])
    with pytest.raises(ValueError, match="not the string"):
        data.cityscapes(str(tmp_path), classes="road,car")
    with pytest.raises(ValueError, match=r"names \['road'\] more than once"):
        data.cityscapes(str(tmp_path), classes=["road", "car", "road"])
    ade = ADE20K.subset(["bed", "wall"])[0]  # mmseg spells class 7 "bed "; either matches
    assert ade.class_names == ("bed ", "wall")
    label_path = f"{tmp_path}/gtFine/train/bremen/bremen_000000_000019_gtFine_labelTrainIds.png"
    _save(label_path, np.full((40, 60), 19))  # 19 is no Cityscapes class, chosen or not
    dataset = data.cityscapes(str(tmp_path), "train", classes=["road"], augment=False)
    with pytest.raises(DataError, match="label values? .*19"):
        dataset.sample(0)
    assert "label values 19" in str(dataset.check(progress=False).problems)
    info, label_map = CITYSCAPES.subset(["car", "road"])
    assert label_map[13] == 0 and label_map[0] == 1 and label_map[255] == 255
    assert (np.delete(label_map, [0, 13]) == 255).all()


def test_folder_training_crops_default_to_the_images_size(tmp_path):
    small = data.save_synthetic_scenes(str(tmp_path / "small"), 2, 40, 60, seed=3)
    train = data.folder(
        f"{small}/images", f"{small}/masks", ".png", ".png", class_names=list("abcd")
    )
    # Before: 512x512 crops of 40x60 scenes upscaled to about 512x768.
    assert train.augmentation.crop_size == (40, 60) and train.augmentation.scale == (60, 40)
    images, labels = train[0]
    assert images.shape[1:3] == (40, 60) and labels.shape[1:3] == (40, 60)
    large = tmp_path / "large"
    _save(large / "images" / "a.png", _image(0, 520, 700))
    _save(large / "masks" / "a.png", np.zeros((520, 700)))
    train = data.folder(f"{large}/images", f"{large}/masks", ".png", ".png", class_names=["a"])
    assert train.augmentation.crop_size == (512, 512) and train.augmentation.scale == (2048, 512)


def test_shards_split_each_epoch_as_distributed_sampler(scenes):
    # 5 images, 2 processes (torchrun): each epoch's order is split rank by rank; for
    # training, wrapped around to as many batches in each process.
    training = _folder(scenes, batch_size=1, seed=3, **SMALL).with_options()
    training.files = training.files[:5]
    order = training._order()
    parts = [training.sharded(rank, 2) for rank in (0, 1)]
    assert [len(part) for part in parts] == [3, 3]
    assert list(parts[0]._order()) == list(order[[0, 2, 4]])
    assert list(parts[1]._order()) == list(order[[1, 3, 0]])  # the first one again
    # Each process its own crops: the same image, another draw than in one process.
    assert not np.array_equal(parts[1][2][0], training[0][0])
    for part in parts:
        part.on_epoch_end()
    training.on_epoch_end()
    assert list(parts[0]._order()) == list(training._order()[[0, 2, 4]])  # reshuffled
    # Validation (whole images): every image once over the processes.
    listed = _folder(scenes)
    whole = data.SegmentationDataset(listed.files, listed.info, batch_size=2)
    halves = [whole.sharded(rank, 4, even=False) for rank in range(4)]
    assert sorted(np.concatenate([half._order() for half in halves])) == list(range(6))
    assert [len(half) for half in halves] == [1, 1, 1, 1]
