#!/usr/bin/env python
"""Golden fixtures for keras_danet.data.augmentation, made by mmseg 1.2.2's own transforms.

Each of mmseg's DANet training transforms runs on a generated image and label map with its
random draws recorded (numpy.random's functions are wrapped while it runs; the transform's
arithmetic is mmseg's and mmcv's own). The draws are written out as the parameters
keras_danet's functions take, beside the inputs and mmseg's outputs:

  resize_*        RandomResize(scale, ratio_range=(0.5, 2.0), keep_ratio=True)
  crop_*          RandomCrop(crop_size, cat_max_ratio=0.75): every candidate corner drawn
  flip_*          RandomFlip(prob=0.5)
  photometric_*   PhotoMetricDistortion() (on BGR, as mmseg; outputs stored as RGB)
  pad_*           SegDataPreProcessor(size=crop) padding: normalised image and label map
  stretch_*       RandomResize(scale, ratio_range=(0.5, 2.0), keep_ratio=False)
  choice_*        RandomChoiceResize(scales, resize_type="Resize", keep_ratio=True/False)
  multiple_*      ResizeToMultiple(size_divisor)
  padmultiple_*   mmcv's Pad(size_divisor) with its default pad_val (img 0, seg 255)
  chain_*         LoadImageFromFile + LoadAnnotations(reduce_zero_label) + the four
                  transforms + SegDataPreProcessor, from files (PNG and JPEG) written here
  optionchain_*   the same with RandomChoiceResize or RandomResize(keep_ratio=False),
                  ResizeToMultiple and Pad(size_divisor) in it
  vocchain_*      the train pipeline and data preprocessor of mmseg's
                  danet_r50-d8_4xb4-20k_voc12aug-512x512.py, read from the config, its
                  scale and crop size made small; it ends with Pad(size=crop_size)

Run in the mmseg venv (see mmseg_reference.py):
    .venv-mmseg/bin/python tools/mmseg_augmentation_reference.py --out tests/fixtures/augmentation
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mmseg_reference  # noqa: E402, F401  (mmcv._ext stub, mmseg scope)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmcv.transforms import (  # noqa: E402
    LoadImageFromFile,
    Pad,
    RandomChoiceResize,
    RandomFlip,
    RandomResize,
)
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.datasets.transforms import (  # noqa: E402
    LoadAnnotations,
    PackSegInputs,
    PhotoMetricDistortion,
    RandomCrop,
    ResizeToMultiple,
)
from mmseg.models.data_preprocessor import SegDataPreProcessor  # noqa: E402
from PIL import Image  # noqa: E402

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
RATIO_RANGE = (0.5, 2.0)
CHOICES = [(96, 64), (150, 40), (64, 48)]


class Draws:
    """Records every numpy.random draw the transforms make while inside `with`."""

    NAMES = ("random_sample", "rand", "randint", "uniform", "choice")

    def __init__(self, seed):
        self.seed, self.calls, self.saved = seed, [], {}

    def __enter__(self):
        np.random.seed(self.seed)
        for name in self.NAMES:
            original = getattr(np.random, name)
            self.saved[name] = original

            def recorded(*args, _name=name, _original=original, **kwargs):
                value = _original(*args, **kwargs)
                self.calls.append((_name, args, value))
                return value

            setattr(np.random, name, recorded)
        return self

    def __exit__(self, *exc):
        for name, original in self.saved.items():
            setattr(np.random, name, original)

    def values(self, name):
        return [value for call, _, value in self.calls if call == name]


def make_inputs(height=97, width=131, seed=0):
    """A textured RGB image and a label map of blocks (values 0-5, some 255)."""
    rng = np.random.RandomState(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    image = np.stack([rows * 2.3, columns * 1.7, (rows + columns) * 1.1], -1)
    image = (image + rng.randint(0, 60, (height, width, 3))) % 256
    label = ((rows // 23) * 2 + (columns // 37)) % 6
    label[rng.rand(height, width) < 0.05] = 255
    # Mostly class 1, other classes in the bottom-right quarter only: most crops hold one
    # class, or 75 % of one, and RandomCrop draws again.
    crop_label = np.where((rows > height // 2) & (columns > width // 2), label, 1)
    return image.astype(np.uint8), label.astype(np.uint8), crop_label.astype(np.uint8)


def rgb(bgr):
    return np.ascontiguousarray(bgr[..., ::-1])


def photometric_parameters(draws):
    """Maps PhotoMetricDistortion's recorded draws to keras_danet's PhotometricParameters."""
    values = iter(value for call, _, value in draws.calls)
    out = {"brightness": None, "contrast": None, "saturation": None, "hue": None}
    if next(values):
        out["brightness"] = float(next(values))
    out["contrast_first"] = bool(next(values) == 1)
    if out["contrast_first"] and next(values):
        out["contrast"] = float(next(values))
    if next(values):
        out["saturation"] = float(next(values))
    if next(values):
        out["hue"] = int(next(values))
    if not out["contrast_first"] and next(values):
        out["contrast"] = float(next(values))
    return out


def run_recorded(chain, results, seed):
    """Runs a pipeline with its draws recorded: `(results, {transform name: its draws})`."""
    steps = {}
    with Draws(seed) as draws:
        for transform in chain:
            before = len(draws.calls)
            results = transform(results)
            steps[type(transform).__name__] = draws.calls[before:]
    return results, steps


def crop_flip_photometric(steps):
    """The crop corners, flip and PhotometricParameters a recorded chain drew."""
    corners = [int(v) for name, _, v in steps["RandomCrop"] if name == "randint"]
    photometric = Draws(0)
    photometric.calls = steps["PhotoMetricDistortion"]
    return {
        "candidates": [corners[i : i + 2] for i in range(0, len(corners), 2)],
        "flip": steps["RandomFlip"][0][2] == "horizontal",
        "photometric": photometric_parameters(photometric),
    }


def preprocessed(preprocessor, results):
    """SegDataPreProcessor on one packed sample: the normalised HWC image and uint8 labels."""
    batch = preprocessor(
        {"inputs": [results["inputs"]], "data_samples": [results["data_samples"]]},
        training=True,
    )
    label = batch["data_samples"][0].gt_sem_seg.data[0].numpy().astype(np.uint8)
    return batch["inputs"][0].permute(1, 2, 0).numpy(), label


def crop_candidates(draws):
    corners = [int(v) for v in draws.values("randint")]
    return [corners[i : i + 2] for i in range(0, len(corners), 2)]


VOC_CONFIG = "danet/danet_r50-d8_4xb4-20k_voc12aug-512x512.py"
VOC_PIPELINE = [
    "LoadImageFromFile",
    "LoadAnnotations",
    "RandomResize",
    "RandomCrop",
    "RandomFlip",
    "PhotoMetricDistortion",
    "Pad",
    "PackSegInputs",
]


class CropShape:
    """Notes the shape of the image reaching it (the crop, before Pad)."""

    def __call__(self, results):
        self.shape = results["img"].shape[:2]
        return results


def voc_chain(out, cases, arrays, scale=(96, 64), crop_size=(80, 80)):
    """The VOC config's own train pipeline (from the config file, its sizes made small):
    crops that come out smaller than `crop_size` are padded by its Pad(size=crop_size).
    The crop is square, as the config's: mmcv's Pad takes (width, height), RandomCrop
    (height, width)."""
    import mmseg
    from mmengine.config import Config
    from mmseg.registry import TRANSFORMS

    configs = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")
    config = Config.fromfile(os.path.join(configs, VOC_CONFIG))
    [train, aug] = config.train_dataloader.dataset.datasets
    assert train.pipeline == aug.pipeline, "train and aug pipelines differ"
    steps = [dict(step) for step in train.pipeline]
    assert [step["type"] for step in steps] == VOC_PIPELINE, [s["type"] for s in steps]
    assert tuple(steps[6]["size"]) == tuple(config.crop_size) == (512, 512)
    steps[2]["scale"], steps[3]["crop_size"], steps[6]["size"] = scale, crop_size, crop_size
    shape = CropShape()
    chain = [TRANSFORMS.build(step) for step in steps]
    chain.insert(6, shape)
    settings = dict(config.model.data_preprocessor)
    settings.pop("type")
    assert settings["size"] == config.crop_size and settings["seg_pad_val"] == 255
    preprocessor = SegDataPreProcessor(**{**settings, "size": crop_size})
    padded = 0
    for index, seed in enumerate([0, 1, 2, 3]):
        results = {
            "img_path": os.path.join(out, "image.png"),
            "seg_map_path": os.path.join(out, "label.png"),
            "reduce_zero_label": False,
            "seg_fields": [],
        }
        results, draws = run_recorded(chain, results, seed)
        cropped = shape.shape
        padded += tuple(cropped) != tuple(crop_size)
        cases[f"vocchain_{index}"] = {
            "scale": list(scale),
            "crop_size": list(crop_size),
            "ratio": float(draws["RandomResize"][0][2] * 1.5 + 0.5),
            "cropped_shape": list(cropped),
            **crop_flip_photometric(draws),
        }
        normalized, label_map = preprocessed(preprocessor, results)
        arrays[f"vocchain_{index}_normalized"] = normalized
        arrays[f"vocchain_{index}_label"] = label_map
    assert padded, "no VOC chain case was padded: pick other seeds"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="augmentation_fixture")
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    init_default_scope("mmseg")
    image, label, crop_label = make_inputs()
    arrays = {"image": image, "label": label, "crop_label": crop_label}
    cases = {}
    bgr = rgb(image)  # mmseg works on BGR

    resize_cases = [((96, 64), 1), ((96, 64), 2), ((96, 64), 3), ((96, 64), 4), ((2048, 512), 5)]
    for index, (scale, seed) in enumerate(resize_cases):
        with Draws(seed) as draws:
            out_ = RandomResize(scale=scale, ratio_range=RATIO_RANGE, keep_ratio=True)(
                {"img": bgr.copy(), "gt_seg_map": label.copy(), "seg_fields": ["gt_seg_map"]}
            )
        [sample] = draws.values("random_sample")
        ratio = sample * (RATIO_RANGE[1] - RATIO_RANGE[0]) + RATIO_RANGE[0]
        cases[f"resize_{index}"] = {"scale": list(scale), "ratio": float(ratio)}
        arrays[f"resize_{index}_image"] = rgb(out_["img"])
        arrays[f"resize_{index}_label"] = out_["gt_seg_map"]

    for index, (scale, seed) in enumerate([((96, 64), 1), ((96, 64), 2), ((150, 40), 3)]):
        with Draws(seed) as draws:
            out_ = RandomResize(scale=scale, ratio_range=RATIO_RANGE, keep_ratio=False)(
                {"img": bgr.copy(), "gt_seg_map": label.copy(), "seg_fields": ["gt_seg_map"]}
            )
        [sample] = draws.values("random_sample")
        ratio = sample * (RATIO_RANGE[1] - RATIO_RANGE[0]) + RATIO_RANGE[0]
        cases[f"stretch_{index}"] = {"scale": list(scale), "ratio": float(ratio)}
        arrays[f"stretch_{index}_image"] = rgb(out_["img"])
        arrays[f"stretch_{index}_label"] = out_["gt_seg_map"]

    for index, (keep_ratio, seed) in enumerate([(True, 0), (True, 1), (False, 2), (False, 5)]):
        with Draws(seed) as draws:
            out_ = RandomChoiceResize(CHOICES, resize_type="Resize", keep_ratio=keep_ratio)(
                {"img": bgr.copy(), "gt_seg_map": label.copy(), "seg_fields": ["gt_seg_map"]}
            )
        [chosen] = draws.values("randint")
        cases[f"choice_{index}"] = {
            "scales": [list(v) for v in CHOICES],
            "keep_ratio": keep_ratio,
            "index": int(chosen),
        }
        arrays[f"choice_{index}_image"] = rgb(out_["img"])
        arrays[f"choice_{index}_label"] = out_["gt_seg_map"]

    for index, divisor in enumerate([32, 16, 7]):
        out_ = ResizeToMultiple(size_divisor=divisor)(
            {"img": bgr.copy(), "gt_seg_map": label.copy(), "seg_fields": ["gt_seg_map"]}
        )
        cases[f"multiple_{index}"] = {"size_divisor": divisor}
        arrays[f"multiple_{index}_image"] = rgb(out_["img"])
        arrays[f"multiple_{index}_label"] = out_["gt_seg_map"]

    for index, divisor in enumerate([32, 16, 97]):
        out_ = Pad(size_divisor=divisor)({"img": bgr.copy(), "gt_seg_map": label.copy()})
        cases[f"padmultiple_{index}"] = {"size_divisor": divisor}
        arrays[f"padmultiple_{index}_image"] = rgb(out_["img"])
        arrays[f"padmultiple_{index}_label"] = out_["gt_seg_map"]

    crop_cases = [((40, 56), seed) for seed in range(8)] + [((120, 150), 8)]
    for index, (size, seed) in enumerate(crop_cases):
        with Draws(seed) as draws:
            out_ = RandomCrop(crop_size=size, cat_max_ratio=0.75)(
                {"img": bgr.copy(), "gt_seg_map": crop_label.copy(), "seg_fields": ["gt_seg_map"]}
            )
        cases[f"crop_{index}"] = {"crop_size": list(size), "candidates": crop_candidates(draws)}
        arrays[f"crop_{index}_image"] = rgb(out_["img"])
        arrays[f"crop_{index}_label"] = out_["gt_seg_map"]

    for seed in range(4):
        with Draws(seed) as draws:
            out_ = RandomFlip(prob=0.5)(
                {"img": bgr.copy(), "gt_seg_map": label.copy(), "seg_fields": ["gt_seg_map"]}
            )
        [direction] = draws.values("choice")
        cases[f"flip_{seed}"] = {"flip": direction == "horizontal"}
        arrays[f"flip_{seed}_image"] = rgb(out_["img"])
        arrays[f"flip_{seed}_label"] = out_["gt_seg_map"]

    for seed in range(12):
        with Draws(seed) as draws:
            out_ = PhotoMetricDistortion()({"img": bgr.copy()})
        cases[f"photometric_{seed}"] = photometric_parameters(draws)
        arrays[f"photometric_{seed}_image"] = rgb(out_["img"])

    preprocessor = SegDataPreProcessor(
        mean=MEAN, std=STD, bgr_to_rgb=True, size=(64, 80), pad_val=0, seg_pad_val=255
    )
    small_bgr, small_label = bgr[:40, :56].copy(), label[:40, :56].copy()
    packed = PackSegInputs()(
        {
            "img": small_bgr,
            "gt_seg_map": small_label,
            "seg_fields": ["gt_seg_map"],
            "img_shape": small_bgr.shape[:2],
            "ori_shape": small_bgr.shape[:2],
        }
    )
    batch = preprocessor(
        {"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, training=True
    )
    cases["pad"] = {"size": [64, 80], "source_height": 40, "source_width": 56}
    arrays["pad_normalized"] = batch["inputs"][0].permute(1, 2, 0).numpy()
    arrays["pad_label"] = batch["data_samples"][0].gt_sem_seg.data[0].numpy().astype(np.uint8)

    # The whole chain from files, ADE20K-style labels (0 = other, reduce_zero_label).
    Image.fromarray(image).save(os.path.join(out, "image.png"))
    Image.fromarray(image).save(os.path.join(out, "image.jpg"), quality=90)
    Image.fromarray(crop_label).save(os.path.join(out, "label.png"))
    chain = [
        LoadImageFromFile(),
        LoadAnnotations(reduce_zero_label=True),
        RandomResize(scale=(96, 64), ratio_range=RATIO_RANGE, keep_ratio=True),
        RandomCrop(crop_size=(48, 64), cat_max_ratio=0.75),
        RandomFlip(prob=0.5),
        PhotoMetricDistortion(),
        PackSegInputs(),
    ]
    preprocessor = SegDataPreProcessor(
        mean=MEAN, std=STD, bgr_to_rgb=True, size=(48, 64), pad_val=0, seg_pad_val=255
    )
    for index, (suffix, seed) in enumerate([("png", 0), ("jpg", 1), ("png", 2), ("png", 7)]):
        results = {
            "img_path": os.path.join(out, f"image.{suffix}"),
            "seg_map_path": os.path.join(out, "label.png"),
            "reduce_zero_label": True,
            "seg_fields": [],
        }
        results, steps = run_recorded(chain, results, seed)
        ratio = steps["RandomResize"][0][2] * 1.5 + 0.5
        cases[f"chain_{index}"] = {
            "file": f"image.{suffix}",
            "scale": [96, 64],
            "crop_size": [48, 64],
            "ratio": float(ratio),
            **crop_flip_photometric(steps),
        }
        normalized, label_map = preprocessed(preprocessor, results)
        arrays[f"chain_{index}_normalized"] = normalized
        arrays[f"chain_{index}_label"] = label_map

    # Chains with the other resizing and padding transforms, the crop smaller than some
    # resized images and larger than others.
    option_chains = [
        ("choice", RandomChoiceResize(CHOICES, resize_type="Resize", keep_ratio=True), 3),
        ("choice", RandomChoiceResize(CHOICES, resize_type="Resize", keep_ratio=True), 4),
        ("stretch", RandomResize((96, 64), ratio_range=RATIO_RANGE, keep_ratio=False), 5),
    ]
    for index, (kind, resizer, seed) in enumerate(option_chains):
        chain = [
            LoadImageFromFile(),
            LoadAnnotations(reduce_zero_label=True),
            resizer,
            ResizeToMultiple(size_divisor=16),
            RandomCrop(crop_size=(40, 56), cat_max_ratio=0.75),
            RandomFlip(prob=0.5),
            PhotoMetricDistortion(),
            Pad(size_divisor=32),
            PackSegInputs(),
        ]
        preprocessor = SegDataPreProcessor(
            mean=MEAN, std=STD, bgr_to_rgb=True, size=(40, 56), pad_val=0, seg_pad_val=255
        )
        results = {
            "img_path": os.path.join(out, "image.png"),
            "seg_map_path": os.path.join(out, "label.png"),
            "reduce_zero_label": True,
            "seg_fields": [],
        }
        results, steps = run_recorded(chain, results, seed)
        resize_draws = steps[type(resizer).__name__]
        if kind == "choice":
            target = CHOICES[int(resize_draws[0][2])]
            keep_ratio = True
        else:
            ratio = resize_draws[0][2] * 1.5 + 0.5
            target = (int(96 * ratio), int(64 * ratio))
            keep_ratio = False
        cases[f"optionchain_{index}"] = {
            "scale": [list(v) for v in CHOICES] if kind == "choice" else [96, 64],
            "keep_ratio": keep_ratio,
            "target_scale": list(target),
            "crop_size": [40, 56],
            "resize_to_multiple": 16,
            "pad_size_divisor": 32,
            **crop_flip_photometric(steps),
        }
        normalized, label_map = preprocessed(preprocessor, results)
        arrays[f"optionchain_{index}_normalized"] = normalized
        arrays[f"optionchain_{index}_label"] = label_map

    voc_chain(out, cases, arrays)

    np.savez_compressed(os.path.join(out, "reference.npz"), **arrays)
    with open(os.path.join(out, "cases.json"), "w") as file:
        json.dump(cases, file, indent=1)
    retried = sum(len(c["candidates"]) > 1 for k, c in cases.items() if k.startswith("crop"))
    print(
        f"{len(cases)} cases, {retried} crops with retries, torch {torch.__version__}, "
        f"stub_calls={mmseg_reference.stubs_called()} -> {out}"
    )


if __name__ == "__main__":
    main()
