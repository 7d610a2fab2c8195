"""Segmentation datasets as `fit`-ready `keras.utils.PyDataset`s: Cityscapes, ADE20K,
PASCAL VOC 2012 + SBD, and any folder of images and masks (mmseg's custom-dataset rules)."""

import functools
import os

import numpy as np

from keras_danet.atomic_files import atomic_write_path
from keras_danet.constants import IGNORE_INDEX
from keras_danet.data.augmentation import Augmentation
from keras_danet.data.images import DataError, read_image, read_label
from keras_danet.data.segmentation_dataset import SegmentationDataset
from keras_danet.dataset_info import ADE20K, CITYSCAPES, VOC12AUG, DatasetInfo


def _pairs(image_dir, label_dir, image_suffix, label_suffix, names=None, where="folder"):
    """mmseg's file listing: every `*image_suffix` under `image_dir` (recursive) or the
    `names` of a split file, each with the label of the same relative name.

    As mmengine's `list_dir_or_file` and mmseg's `BaseSegDataset`: hidden files (".name")
    are skipped, sub-folders are walked (hidden and linked ones too), and the list is sorted
    by the image's whole path, suffix included, so "a-1.jpg" comes before "a.jpg".
    """
    if not os.path.isdir(image_dir):
        raise DataError(f"The image folder {image_dir} does not exist.")
    if names is None:
        found = []
        for folder, _, files in os.walk(image_dir, followlinks=True):
            for file in files:
                if file.endswith(image_suffix) and not file.startswith("."):
                    found.append(os.path.relpath(os.path.join(folder, file), image_dir))
        names = [relative[: -len(image_suffix)] for relative in sorted(found)]
        if not names:
            raise DataError(f"No files ending in {image_suffix!r} under {image_dir} ({where}).")
    pairs, missing = [], []
    for name in names:
        image = os.path.join(image_dir, name + image_suffix)
        label = os.path.join(label_dir, name + label_suffix)
        if not os.path.isfile(image):
            missing.append(image)
        elif not os.path.isfile(label):
            missing.append(label)
        pairs.append((image, label))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{where}: {len(missing)} of {len(names)} images or label maps are missing: "
            + ", ".join(missing[:5])
            + more
        )
    return pairs


def _read_split_file(path):
    if not os.path.isfile(path):
        raise DataError(f"The split file {path} does not exist.")
    with open(path) as file:
        names = [line.strip() for line in file if line.strip()]
    if not names:
        raise DataError(f"The split file {path} lists no images.")
    return names


def _dataset(files, info, split, training_defaults, name, **options):
    """Applies the split's defaults: augmentation for training splits, none otherwise.

    `training_defaults` is a dict, or a function giving one (called only when a training
    split needs a crop size or scale it was not given)."""
    augment = options.pop("augment", None)
    crop_size = options.pop("crop_size", None)
    scale = options.pop("scale", None)
    if augment is None:
        augment = split in ("train", "training", "trainaug")
    augmentation = options.pop("augmentation", None)
    if augment and augmentation is None:
        if callable(training_defaults):
            training_defaults = training_defaults() if not (crop_size and scale) else {}
        crop_size = tuple(crop_size or training_defaults["crop_size"])
        scale = tuple(scale or training_defaults["scale"])
        augmentation = Augmentation(
            scale=scale,
            crop_size=crop_size,
            pad_to_crop=training_defaults.get("pad_to_crop", False),
        )
    elif not augment:
        augmentation = None
    return SegmentationDataset(files, info, augmentation=augmentation, name=name, **options)


def cityscapes(root, split="train", **options):
    """Cityscapes (fine) as mmseg reads it: 19 train ids, 255 ignored.

    `root` holds `leftImg8bit/{split}/<city>/*_leftImg8bit.png` and
    `gtFine/{split}/<city>/*_gtFine_labelTrainIds.png`; the latter are made from the
    `*_gtFine_labelIds.png` files by `convert_cityscapes_label_ids(root)`. Training crops are
    512x1024 from scale (2048, 1024); `crop_size=(769, 769), scale=(2049, 1025)` gives the
    769x769 configs'. Other `options` are `SegmentationDataset`'s (`batch_size`, `seed`,
    `workers`, `augment`, `classes` for a subset of the classes).

    Example:
    >>> train = keras_danet.data.cityscapes("data/cityscapes", "train", batch_size=2)
    >>> vehicles = keras_danet.data.cityscapes("data/cityscapes", "val", classes=["car", "bus"])
    """
    image_dir = os.path.join(root, "leftImg8bit", split)
    label_dir = os.path.join(root, "gtFine", split)
    suffix = "_gtFine_labelTrainIds.png"
    try:
        files = _pairs(
            image_dir, label_dir, "_leftImg8bit.png", suffix, where=f"cityscapes {split}"
        )
    except DataError as error:
        if "missing" in str(error) and _has_label_ids(label_dir):
            raise DataError(
                f"{error}\nThe folder has *_gtFine_labelIds.png but no *_labelTrainIds.png "
                "files: make them once with keras_danet.data.convert_cityscapes_label_ids("
                f"{root!r})."
            ) from None
        raise
    defaults = {"crop_size": (512, 1024), "scale": (2048, 1024)}
    return _dataset(files, CITYSCAPES, split, defaults, f"cityscapes {split}", **options)


def _has_label_ids(folder):
    for _, _, files in os.walk(folder):
        if any(file.endswith("_gtFine_labelIds.png") for file in files):
            return True
    return False


def ade20k(root, split="train", **options):
    """ADE20K (SceneParsing 2016) as mmseg reads it: 150 classes, `reduce_zero_label`.

    `root` is `ADEChallengeData2016/`, holding `images/{training,validation}/*.jpg` and
    `annotations/{training,validation}/*.png`; `split` is "train" or "val" (or the folder
    names). Label 0 ("other") becomes 255 and the others drop by one. Training crops are
    512x512 from scale (2048, 512).
    """
    folder = {"train": "training", "val": "validation"}.get(split, split)
    files = _pairs(
        os.path.join(root, "images", folder),
        os.path.join(root, "annotations", folder),
        ".jpg",
        ".png",
        where=f"ade20k {split}",
    )
    defaults = {"crop_size": (512, 512), "scale": (2048, 512)}
    return _dataset(
        files, ADE20K, split, defaults, f"ade20k {split}", reduce_zero_label=True, **options
    )


def voc12aug(root, split="train", **options):
    """PASCAL VOC 2012 with SBD's extra masks ("aug"), as mmseg's voc12aug configs read it.

    `root` is `VOCdevkit/VOC2012/`. "train" is mmseg's concatenation of
    `ImageSets/Segmentation/train.txt` with `SegmentationClass/` masks and `aug.txt` with
    `SegmentationClassAug/` masks (10,582 images); "val" is `val.txt` with
    `SegmentationClass/`. Any other split name reads `<split>.txt` with
    `SegmentationClassAug/`. 21 classes, background included; 255 (boundaries) ignored.
    Training crops are 512x512 from scale (2048, 512); a crop smaller than that is padded
    with black and 255 before normalisation, as the config's `Pad(size=crop_size)`.
    """
    sets = os.path.join(root, "ImageSets", "Segmentation")
    images = os.path.join(root, "JPEGImages")

    def listed(list_name, masks):
        path = os.path.join(sets, f"{list_name}.txt")
        if list_name == "aug" and not os.path.isfile(path):
            raise DataError(
                f"{path} does not exist: voc12aug's training set needs SBD's masks converted "
                "into SegmentationClassAug/ and aug.txt (mmseg's "
                "tools/dataset_converters/voc_aug.py does both)."
            )
        return _pairs(
            images,
            os.path.join(root, masks),
            ".jpg",
            ".png",
            names=_read_split_file(path),
            where=f"voc12aug {list_name}.txt",
        )

    if split == "train":
        files = listed("train", "SegmentationClass") + listed("aug", "SegmentationClassAug")
    elif split == "val":
        files = listed("val", "SegmentationClass")
    else:
        files = listed(split, "SegmentationClassAug")
    defaults = {"crop_size": (512, 512), "scale": (2048, 512), "pad_to_crop": True}
    return _dataset(files, VOC12AUG, split, defaults, f"voc12aug {split}", **options)


def folder(
    images_dir,
    masks_dir,
    img_suffix=".jpg",
    seg_map_suffix=".png",
    split_file=None,
    reduce_zero_label=False,
    class_names=None,
    palette=None,
    *,
    split="train",
    **options,
):
    """Your own data, by mmseg's custom-dataset convention.

    Every `*img_suffix` file under `images_dir` (or each name in `split_file`, one per line,
    without suffix) pairs with the mask of the same relative name and `seg_map_suffix` under
    `masks_dir`. Masks hold class indices (a grayscale or palette PNG), 255 for unlabelled
    pixels; with `reduce_zero_label`, 0 means unlabelled and classes start at 1.
    `class_names` is required; `palette` (RGB per class) defaults to mmseg's random one.
    `split="train"` augments: crops of `crop_size` from images resized to `scale` x 0.5-2.0,
    by default mmseg's 512x512 crops from scale (2048, 512) for images of 512 pixels and
    more, else crops and scale of the images' own size (judged by the first image); any
    other split gives whole images.

    Example:
    >>> train = keras_danet.data.folder("shapes/images", "shapes/masks", ".png", ".png",
    ...     class_names=["background", "circle", "square"], batch_size=4)
    """
    if not class_names:
        raise ValueError("folder() needs class_names: the names of the classes, in order.")
    if isinstance(class_names, str):  # "bg,crack" would be 8 one-letter classes
        raise ValueError(
            f"class_names is a list of names, not the string {class_names!r}; did you mean "
            f"{[name.strip() for name in class_names.split(',')]}?"
        )
    class_names = tuple(str(name).strip() for name in class_names)
    if not all(class_names) or len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be distinct and not blank; got {list(class_names)}.")
    if palette is None:  # mmseg's rule for a dataset without a palette
        palette = np.random.RandomState(42).randint(0, 255, size=(len(class_names), 3))
    palette = tuple(tuple(int(v) for v in color) for color in palette)
    if len(palette) != len(class_names) or any(len(color) != 3 for color in palette):
        raise ValueError(
            f"palette needs one RGB triple per class: {len(class_names)} classes, "
            f"{len(palette)} colours."
        )
    name = _dataset_name(images_dir)
    info = DatasetInfo(name=name, title=name, class_names=class_names, palette=palette)
    names = _read_split_file(split_file) if split_file else None
    files = _pairs(
        images_dir, masks_dir, img_suffix, seg_map_suffix, names=names, where=f"folder {split}"
    )
    defaults = functools.partial(_folder_training_defaults, files[0][0])
    return _dataset(
        files,
        info,
        split,
        defaults,
        f"{name} {split}",
        reduce_zero_label=reduce_zero_label,
        **options,
    )


def _dataset_name(images_dir):
    """The dataset's name in a preset and its model card: the folder's, or its parent's
    when the folder is only called "images" ("my_data/images" -> "my_data")."""
    folder = os.path.normpath(os.path.abspath(images_dir))
    name = os.path.basename(folder)
    if name.lower() in ("images", "image", "imgs", "img", "jpegimages"):
        name = os.path.basename(os.path.dirname(folder)) or name
    return name or "folder"


def _folder_training_defaults(image_path):
    """mmseg's crop and scale for ADE20K-sized photos; for smaller images, their own size
    (512x512 crops of a 64x96 image upscaled 8x were mostly padding and blur)."""
    height, width = read_image(image_path).shape[:2]
    if min(height, width) >= 512:
        return {"crop_size": (512, 512), "scale": (2048, 512)}
    return {
        "crop_size": (min(height, 512), min(width, 512)),
        "scale": (max(height, width), min(height, width)),
    }


# Cityscapes' labelIds -> trainIds (cityscapesScripts' labels.py): the 19 evaluated classes;
# everything else is 255.
CITYSCAPES_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def convert_cityscapes_label_ids(root, progress=True):
    """Writes `*_gtFine_labelTrainIds.png` beside every `*_gtFine_labelIds.png` under `root`.

    The same maps mmseg's converter makes from the polygon files: the 19 evaluated classes
    get their train ids 0-18, every other class 255. Existing files are left alone; each new
    one is written to a temporary name and renamed. Returns the number written.
    """
    from PIL import Image
    from tqdm.auto import tqdm  # reads TQDM_* settings when imported

    table = np.full(256, IGNORE_INDEX, np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        table[label_id] = train_id
    sources = []
    for folder_path, _, files in os.walk(os.path.join(root, "gtFine")):
        sources += [os.path.join(folder_path, f) for f in files if f.endswith("_labelIds.png")]
    if not sources:
        raise DataError(f"No *_gtFine_labelIds.png files under {os.path.join(root, 'gtFine')}.")
    written = 0
    for source in tqdm(sorted(sources), desc="labelIds -> labelTrainIds", disable=not progress):
        target = source[: -len("_labelIds.png")] + "_labelTrainIds.png"
        if os.path.exists(target):
            continue
        label = read_label(source)
        with atomic_write_path(target, suffix=".png") as partial:
            Image.fromarray(table[label]).save(partial, format="PNG")
        written += 1
    return written


__all__ = [
    "SegmentationDataset",
    "ade20k",
    "cityscapes",
    "convert_cityscapes_label_ids",
    "folder",
    "voc12aug",
]
