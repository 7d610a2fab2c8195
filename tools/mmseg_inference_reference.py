#!/usr/bin/env python
"""Golden fixtures for keras_danet's test-time modes and metrics, made by mmseg 1.2.2.

With the tiny mmseg checkpoints of tests/fixtures (loaded into mmseg's own DANet):

  slide_*  `EncoderDecoder.slide_inference` on sizes the windows do not divide: 97x129 with
           65x65 windows every 43 (the last row and column pulled back), and 50x70 with
           align_corners, 33x41 windows every 17; the full-resolution logits.
  tta_*    `SegTTAModel` over mmseg's own TestTimeAug pipeline (Resize(scale_factor=r,
           keep_ratio=True) for r in 0.5 ... 1.75, no flip and flip) from a PNG file: every
           view's logits after mmseg's postprocess (flipped back, resized to the image), the
           averaged softmax, and the merged prediction.
  tta_vertical  the same with horizontal and vertical flips (RandomFlip(direction=...)).
  metric_* `IoUMetric`: label maps and predictions of several sizes with a class absent
           from both, a class predicted but absent, an all-255 image, and an ADE20K-style
           label file read with LoadAnnotations(reduce_zero_label=True); its unrounded
           per-class arrays and its rounded summary.
  outside_* `IoUMetric` on predictions outside the classes (255 padding, -1, C, a class of
           another set): the issue's 4-pixel case and a random one; unrounded arrays.
  options_* `IoUMetric(iou_metrics=["mIoU", "mDice", "mFscore"])`, and with beta=2 and
           nan_to_num=-1, on the metric_* inputs: unrounded arrays and rounded summaries.
  folder_order  `BaseSegDataset` listing a folder without a split file: file names that
           sort differently with and without their suffix (`a-1.jpg` / `a.jpg`), sub-folders,
           a hidden file and a hidden folder; the image and mask paths in mmseg's order.
  classes_*  `CityscapesDataset` and `ADE20KDataset` (reduce_zero_label) built with
           `metainfo=dict(classes=...)`, a re-ordered subset: the label maps its pipeline's
           LoadAnnotations gives (label_map applied), its classes and palette, and IoUMetric
           on those labels against random predictions.

Run in the mmseg venv (see mmseg_reference.py):
    .venv-mmseg/bin/python tools/mmseg_inference_reference.py --out tests/fixtures/evaluation
"""

import argparse
import json
import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mmseg_reference as reference  # noqa: E402  (mmcv._ext stub, mmseg scope)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmcv.transforms import LoadImageFromFile, RandomFlip, Resize, TestTimeAug  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.datasets.transforms import LoadAnnotations, PackSegInputs  # noqa: E402
from mmseg.evaluation import IoUMetric  # noqa: E402
from mmseg.models.segmentors import SegTTAModel  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from PIL import Image  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
TINY = dict(stem_channels=8, base_channels=4, head_channels=16, pam_channels=4, aux_channels=8)
TTA_RATIOS = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def load_model(fixture, num_classes, align_corners, test_cfg):
    args = SimpleNamespace(depth=50, num_classes=num_classes, align_corners=align_corners, **TINY)
    cfg = reference.build_config(args)
    cfg.model.test_cfg = test_cfg
    model = reference.build_model(cfg)
    state = torch.load(os.path.join(FIXTURES, fixture, "checkpoint.pth"), weights_only=True)
    model.load_state_dict(state["state_dict"], strict=True)
    return model.eval()


def rgb_image(height, width, seed):
    """Smooth random RGB 0-255 (float), so that logits vary over the image."""
    rng = np.random.RandomState(seed)
    coarse = rng.uniform(0, 255, (height // 8 + 2, width // 8 + 2, 3))
    rows = np.linspace(0, coarse.shape[0] - 1.001, height)
    columns = np.linspace(0, coarse.shape[1] - 1.001, width)
    image = coarse[rows.astype(int)][:, columns.astype(int)]
    return (image + rng.normal(0, 20, image.shape)).clip(0, 255).astype(np.float32)


def normalize(image, cfg):
    mean = np.array(cfg.model.data_preprocessor.mean, np.float32)
    std = np.array(cfg.model.data_preprocessor.std, np.float32)
    return torch.from_numpy(((image - mean) / std).transpose(2, 0, 1)[None].copy())


@torch.no_grad()
def slide_cases(arrays, cases):
    specs = [
        ("slide_0", "danet_r50_tiny", 19, False, (97, 129), (65, 65), (43, 43)),
        ("slide_1", "danet_r50_tiny_align_corners", 5, True, (50, 70), (33, 41), (17, 17)),
    ]
    for name, fixture, classes, align, size, crop, stride in specs:
        test_cfg = dict(mode="slide", crop_size=crop, stride=stride)
        model = load_model(fixture, classes, align, test_cfg)
        image = rgb_image(*size, seed=len(name) + size[0])
        cfg = SimpleNamespace(
            model=SimpleNamespace(
                data_preprocessor=SimpleNamespace(
                    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]
                )
            )
        )
        metas = [dict(img_shape=size, ori_shape=size, pad_shape=size)]
        logits = model.slide_inference(normalize(image, cfg), metas)
        arrays[f"{name}_image"] = image
        arrays[f"{name}_logits"] = logits[0].numpy().transpose(1, 2, 0)
        cases[name] = dict(
            fixture=fixture, crop=list(crop), stride=list(stride), align_corners=align
        )


@torch.no_grad()
def tta_case(arrays, cases, out, name="tta", ratios=TTA_RATIOS, directions=("horizontal",)):
    model = load_model("danet_r50_tiny", 19, False, dict(mode="whole"))
    image = rgb_image(45, 61, seed=9).round().astype(np.uint8)
    path = os.path.join(out, "tta_image.png")
    Image.fromarray(image).save(path)
    flips = [RandomFlip(prob=0.0, direction="horizontal")]
    flips += [RandomFlip(prob=1.0, direction=direction) for direction in directions]
    pipeline = [
        LoadImageFromFile(),
        TestTimeAug(
            transforms=[
                [Resize(scale_factor=r, keep_ratio=True) for r in ratios],
                flips,
                [PackSegInputs()],
            ]
        ),
    ]
    results = {"img_path": path}
    for transform in pipeline:
        results = transform(results)
    data = pseudo_collate([results])
    tta = SegTTAModel(module=model)
    merged = tta.test_step(data)[0].pred_sem_seg.data[0].numpy()
    views, shapes = [], []
    for index in range(len(data["inputs"])):
        view = {key: value[index] for key, value in data.items()}
        sample = model.test_step(view)[0]
        views.append(sample.seg_logits.data.numpy().transpose(1, 2, 0))
        shapes.append(list(view["inputs"][0].shape[1:]))
    logits = np.stack(views)
    probabilities = torch.from_numpy(logits).softmax(-1).mean(0).numpy()
    if name == "tta":  # the same image for every case
        arrays["tta_image"] = image
    arrays[f"{name}_probabilities"] = probabilities
    arrays[f"{name}_prediction"] = merged.astype(np.uint8)
    cases[name] = dict(ratios=list(ratios), view_shapes=shapes, file="tta_image.png")
    if name == "tta":
        cases[name]["flips"] = [False, True]
    else:
        cases[name]["directions"] = list(directions)


def metric_cases(arrays, cases, out):
    rng = np.random.RandomState(4)
    # Classes 0-3 labelled everywhere, 4-5 only in the ADE20K-style map, 6 predicted once
    # but never labelled (IoU 0, accuracy NaN), 7 nowhere (both NaN).
    classes = 8
    labels, predictions = [], []
    for index, (height, width) in enumerate([(20, 30), (33, 17), (25, 25), (8, 40)]):
        label = rng.randint(0, 4, (height, width))
        label[rng.rand(height, width) < 0.1] = 255
        prediction = np.where(rng.rand(height, width) < 0.7, label, rng.randint(0, 5, label.shape))
        prediction[prediction == 255] = 0
        if index == 0:
            prediction[0, 0] = 6
        if index == 2:
            label[:] = 255  # an image with nothing labelled
        labels.append(label.astype(np.uint8))
        predictions.append(prediction.astype(np.uint8))
    # ADE20K-style raw labels (0 = other), read by mmseg with reduce_zero_label.
    raw = rng.randint(0, 7, (19, 23)).astype(np.uint8)
    raw_path = os.path.join(out, "metric_raw_label.png")
    Image.fromarray(raw).save(raw_path)
    loaded = LoadAnnotations(reduce_zero_label=True)(
        {"seg_map_path": raw_path, "reduce_zero_label": True, "seg_fields": []}
    )["gt_seg_map"]
    labels.append(loaded)
    predictions.append(rng.randint(0, 6, raw.shape).astype(np.uint8))

    unrounded, summary = _iou_metric(labels, predictions, classes, summary=True)
    for index, (label, prediction) in enumerate(zip(labels, predictions, strict=True)):
        arrays[f"metric_label_{index}"] = label
        arrays[f"metric_prediction_{index}"] = prediction
    arrays.update(
        metric_iou=unrounded["IoU"],
        metric_acc=unrounded["Acc"],
        metric_aacc=np.float64(unrounded["aAcc"]),
    )
    cases["metric"] = dict(
        num_classes=classes,
        images=len(labels),
        raw_label_file="metric_raw_label.png",
        raw_label_index=len(labels) - 1,
        summary=summary,
    )


def _iou_metric(labels, predictions, classes, summary=False, **options):
    """mmseg's IoUMetric over (label, prediction) pairs: its unrounded per-class arrays (and
    with `summary`, also its rounded summary)."""
    options.setdefault("iou_metrics", ["mIoU"])
    metric = IoUMetric(**options)
    metric.dataset_meta = {"classes": [f"class_{i}" for i in range(classes)]}
    samples = []
    for label, prediction in zip(labels, predictions, strict=True):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label[None].astype(np.int64)))
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(prediction[None].astype(np.int64)))
        samples.append(sample.to_dict())
    metric.process({}, samples)
    totals = [sum(parts) for parts in zip(*metric.results, strict=True)]
    unrounded = IoUMetric.total_area_to_metrics(
        *totals, options["iou_metrics"], options.get("nan_to_num"), options.get("beta", 1)
    )
    if summary:
        return unrounded, {k: float(v) for k, v in metric.compute_metrics(metric.results).items()}
    return unrounded


def metric_option_cases(arrays, cases):
    # The inputs of the metric_* case (absent classes, an all-255 image) with every metric
    # of IoUMetric, then beta=2 and nan_to_num=-1.
    spec = cases["metric"]
    labels = [arrays[f"metric_label_{i}"] for i in range(spec["images"])]
    predictions = [arrays[f"metric_prediction_{i}"] for i in range(spec["images"])]
    for name, options in {
        "all": dict(iou_metrics=["mIoU", "mDice", "mFscore"]),
        "beta_nan": dict(iou_metrics=["mDice", "mFscore"], beta=2, nan_to_num=-1),
    }.items():
        unrounded, summary = _iou_metric(
            labels, predictions, spec["num_classes"], summary=True, **options
        )
        for key, value in unrounded.items():
            arrays[f"options_{name}_{key}"] = np.asarray(value, np.float64)
        cases[f"options_{name}"] = dict(options=options, summary=summary, keys=list(unrounded))


def outside_prediction_cases(arrays, cases):
    # The issue's case: one labelled pixel of class 0 predicted 255.
    issue = ([np.array([[0, 0, 1, 1]], np.uint8)], [np.array([[0, 255, 1, 1]], np.int64)], 2)
    rng = np.random.RandomState(5)
    labels, predictions = [], []
    for height, width in [(12, 17), (9, 9)]:
        label = rng.randint(0, 5, (height, width))
        label[rng.rand(height, width) < 0.1] = 255
        prediction = np.where(rng.rand(height, width) < 0.6, label, rng.randint(0, 5, label.shape))
        # Outside the 5 classes: 255 padding, -1, 5 and 7 (a class of another set).
        outside = rng.rand(height, width) < 0.2
        prediction[outside] = rng.choice([255, -1, 5, 7], outside.sum())
        labels.append(label.astype(np.uint8))
        predictions.append(prediction.astype(np.int64))
    for name, (case_labels, case_predictions, classes) in {
        "issue": issue,
        "random": (labels, predictions, 5),
    }.items():
        result = _iou_metric(case_labels, case_predictions, classes)
        for index, label in enumerate(case_labels):
            arrays[f"outside_{name}_label_{index}"] = label
            arrays[f"outside_{name}_prediction_{index}"] = case_predictions[index]
        arrays[f"outside_{name}_iou"] = result["IoU"]
        arrays[f"outside_{name}_acc"] = result["Acc"]
        arrays[f"outside_{name}_aacc"] = np.float64(result["aAcc"])
        cases[f"outside_{name}"] = dict(num_classes=classes, images=len(case_labels))


def folder_order_case(cases):
    import tempfile

    from mmseg.datasets import BaseSegDataset

    # Names that sort one way with their suffix and another without ("-", " ", "+", ","
    # come before "."), in sub-folders too; a hidden file (mmengine skips it) and a hidden
    # folder (mmengine walks it); a file of another suffix.
    names = [
        "a.jpg", "a-1.jpg", "a 1.jpg", "a+1.jpg", "a,1.jpg", "a_1.jpg", "a1.jpg", "B.jpg",
        "b.jpg", "b/c.jpg", "b-c/d.jpg", "b.c/e.jpg", ".hidden.jpg", ".cache/f.jpg",
        "notes.txt", "z.jpg.png",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as root:
        for name in names:
            image = os.path.join(root, "images", name)
            mask = os.path.join(root, "masks", name.removesuffix(".jpg") + ".png")
            for path in (image, mask):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "w").close()
        dataset = BaseSegDataset(
            data_root=root,
            data_prefix=dict(img_path="images", seg_map_path="masks"),
            img_suffix=".jpg",
            seg_map_suffix=".png",
            metainfo=dict(classes=("a", "b")),
            pipeline=[],
            serialize_data=False,
        )
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        images = [os.path.relpath(info["img_path"], f"{root}/images") for info in infos]
        masks = [os.path.relpath(info["seg_map_path"], f"{root}/masks") for info in infos]
    cases["folder_order"] = dict(
        files=names, img_suffix=".jpg", seg_map_suffix=".png", images=images, masks=masks
    )


def classes_subset_cases(arrays, cases, out):
    import tempfile

    from mmseg.datasets import ADE20KDataset, CityscapesDataset

    rng = np.random.RandomState(11)
    specs = {
        "cityscapes": (CityscapesDataset, ("car", "road", "person", "sky"), 19, {}),
        "ade20k": (ADE20KDataset, ("sky", "wall", "bed ", "tree", "clock"), 151, {}),
    }
    for name, (dataset_class, classes, values, _) in specs.items():
        label = rng.randint(0, values, (23, 31)).astype(np.uint8)
        label[rng.rand(23, 31) < 0.1] = 255
        # Make the chosen classes common, so that every one of them is in the map.
        chosen = [dataset_class.METAINFO["classes"].index(c) for c in classes]
        if name == "ade20k":
            chosen = [c + 1 for c in chosen]  # the file holds ADE20K's 0 = other
        common = rng.rand(23, 31) < 0.5
        label[common] = rng.choice(chosen, common.sum())
        Image.fromarray(label).save(os.path.join(out, f"classes_{name}.png"))
        with tempfile.TemporaryDirectory() as root:
            if name == "cityscapes":
                images, masks = "leftImg8bit/val/city", "gtFine/val/city"
                image_name, mask_name = "x_leftImg8bit.png", "x_gtFine_labelTrainIds.png"
                prefix = dict(img_path="leftImg8bit/val", seg_map_path="gtFine/val")
            else:
                images, masks = "images/validation", "annotations/validation"
                image_name, mask_name = "x.jpg", "x.png"
                prefix = dict(img_path="images/validation", seg_map_path="annotations/validation")
            os.makedirs(os.path.join(root, images))
            os.makedirs(os.path.join(root, masks))
            image = rgb_image(23, 31, 0).astype(np.uint8)
            Image.fromarray(image).save(os.path.join(root, images, image_name))
            Image.fromarray(label).save(os.path.join(root, masks, mask_name))
            dataset = dataset_class(
                data_root=root,
                data_prefix=prefix,
                metainfo=dict(classes=classes),
                pipeline=[LoadAnnotations()],
                serialize_data=False,
            )
            mapped = dataset[0]["gt_seg_map"]
        prediction = rng.randint(0, len(classes), mapped.shape)
        prediction = np.where(rng.rand(*mapped.shape) < 0.5, mapped, prediction)
        prediction[prediction == 255] = 0
        result = _iou_metric([mapped], [prediction], len(classes))
        arrays[f"classes_{name}_label"] = mapped
        arrays[f"classes_{name}_prediction"] = prediction.astype(np.int64)
        arrays[f"classes_{name}_iou"] = result["IoU"]
        arrays[f"classes_{name}_acc"] = result["Acc"]
        arrays[f"classes_{name}_aacc"] = np.float64(result["aAcc"])
        cases[f"classes_{name}"] = dict(
            file=f"classes_{name}.png",
            classes=list(dataset.metainfo["classes"]),
            palette=[list(map(int, color)) for color in dataset.metainfo["palette"]],
            label_map={str(k): int(v) for k, v in dataset.metainfo["label_map"].items()},
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="evaluation_fixture")
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    arrays, cases = {}, {}
    slide_cases(arrays, cases)
    tta_case(arrays, cases, out)
    # mmseg 0.x's flip_direction=["horizontal", "vertical"]: one view per direction.
    tta_case(arrays, cases, out, "tta_vertical", [0.75, 1.0, 1.5], ("horizontal", "vertical"))
    metric_cases(arrays, cases, out)
    outside_prediction_cases(arrays, cases)
    metric_option_cases(arrays, cases)
    folder_order_case(cases)
    classes_subset_cases(arrays, cases, out)
    if reference.STUB_CALLS:
        sys.exit(f"mmcv._ext stubs were called ({reference.stubs_called()}); nothing written")
    np.savez_compressed(os.path.join(out, "reference.npz"), **arrays)
    with open(os.path.join(out, "cases.json"), "w") as file:
        json.dump(cases, file, indent=1)
    print(
        f"{sorted(cases)} -> {out}; metric summary {cases['metric']['summary']}; "
        f"stub_calls={reference.stubs_called()}"
    )


if __name__ == "__main__":
    main()
