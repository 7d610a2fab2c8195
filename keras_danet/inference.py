"""Test-time inference as mmseg runs it: whole image, sliding window, multi-scale + flip.

Functions of a model and one image (RGB, 0-255, `(H, W, 3)`), outside the model's graph,
as mmseg's `slide_inference` and `SegTTAModel` are outside its network. Each returns logits
or probabilities at the image's own size, `(H, W, classes)`, as NumPy.

The image is first resized as mmseg's test pipeline does (`Resize(test_scale,
keep_ratio=True)`, OpenCV bilinear), the logits are computed on that (whole, or window by
window), then resized back bilinearly to the original size, where metrics are taken.
"""

import glob
import os

import numpy as np
from keras import ops

from keras_danet.constants import MULTI_SCALE_RATIOS
from keras_danet.data.augmentation import rescaled_size
from keras_danet.data.images import opencv
from keras_danet.image_input import as_rgb
from keras_danet.layers.bilinear_resize import resize_bilinear
from keras_danet.presets.preset import TestSettings


def rescale(image, target):
    """mmcv's `imrescale(image, target)`: the largest size within `target`, ratio kept."""
    height, width = rescaled_size(image.shape[0], image.shape[1], target)
    if (height, width) == image.shape[:2]:
        return image
    cv2 = opencv()
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_LINEAR)


def rescale_by(image, ratio):
    """mmcv's `Resize(scale_factor=ratio, keep_ratio=True)`, as mmseg's TTA views use it."""
    height, width = image.shape[:2]
    return rescale(image, (int(width * ratio + 0.5), int(height * ratio + 0.5)))


def _predict(model, batch):
    return np.asarray(model.predict_on_batch(np.asarray(batch, np.float32)))


def whole_logits(model, image):
    """The model's logits for the whole image, at its size (the model resizes inside)."""
    return _predict(model, image[None])[0]


def window_boxes(height, width, crop, stride):
    """mmseg's slide grid: `(top, bottom, left, right)` of each window, the last row and
    column pulled back to end at the border; windows shrink to an image smaller than them."""
    rows = max(height - crop[0] + stride[0] - 1, 0) // stride[0] + 1
    columns = max(width - crop[1] + stride[1] - 1, 0) // stride[1] + 1
    boxes = []
    for row in range(rows):
        for column in range(columns):
            bottom = min(row * stride[0] + crop[0], height)
            right = min(column * stride[1] + crop[1], width)
            boxes.append((max(bottom - crop[0], 0), bottom, max(right - crop[1], 0), right))
    return boxes


def slide_logits(model, image, crop, stride, window_batch_size=2):
    """mmseg's `slide_inference`: logits averaged over overlapping windows, at image size.

    Each window's logits are resized (inside the model) to the window, summed onto a canvas
    and divided by how many windows cover each pixel. Windows all have one size, so
    `window_batch_size` of them run together (BatchNorm is per image at test time, so this
    changes no number).
    """
    height, width = image.shape[:2]
    boxes = window_boxes(height, width, crop, stride)
    canvas, count = None, np.zeros((height, width, 1), np.float32)
    for start in range(0, len(boxes), max(int(window_batch_size), 1)):
        chunk = boxes[start : start + window_batch_size]
        windows = np.stack([image[top:bottom, left:right] for top, bottom, left, right in chunk])
        for (top, bottom, left, right), logits in zip(chunk, _predict(model, windows), strict=True):
            if canvas is None:
                canvas = np.zeros((height, width, logits.shape[-1]), np.float32)
            canvas[top:bottom, left:right] += logits
            count[top:bottom, left:right] += 1
    return canvas / count


def _resize_logits(logits, size, align_corners):
    if tuple(logits.shape[:2]) == tuple(size):
        return logits
    resized = resize_bilinear(logits[None], tuple(size), align_corners)
    return np.asarray(ops.convert_to_numpy(resized))[0]


def _logits_of_view(model, view, settings, window_batch_size):
    if settings.mode == "slide":
        return slide_logits(model, view, settings.crop, settings.stride, window_batch_size)
    return whole_logits(model, view)


def predict_logits(model, image, settings=None, window_batch_size=2):
    """Logits at the image's size by mmseg's single-scale test: resize to the test scale,
    whole or slide inference, resize back (bilinear, the model's `align_corners`)."""
    settings = settings or TestSettings.of(model)
    image = np.asarray(image)
    view = rescale(image, settings.scale) if settings.scale else image
    logits = _logits_of_view(model, view, settings, window_batch_size)
    return _resize_logits(logits, image.shape[:2], model.align_corners)


def softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(-1, keepdims=True)


FLIP_DIRECTIONS = ("horizontal", "vertical")


def flip_directions(flip):
    """The flipped views of `flip` (True, False, a direction or a list of them), checked."""
    if flip is True:
        return ("horizontal",)
    if flip is False or flip is None:
        return ()
    directions = (flip,) if isinstance(flip, str) else tuple(flip)
    wrong = [d for d in directions if d not in FLIP_DIRECTIONS]
    if wrong or len(set(directions)) != len(directions):
        raise ValueError(
            f"flip must be True, False, or distinct directions out of {list(FLIP_DIRECTIONS)}; "
            f"got {flip!r}."
        )
    return directions


def _flipped(array, direction):
    """`array` (H, W, ...) mirrored left-right ("horizontal") or upside down ("vertical")."""
    if direction == "horizontal":
        return array[:, ::-1]
    if direction == "vertical":
        return array[::-1]
    return array


def multi_scale_flip_probabilities(
    model,
    image,
    settings=None,
    ratios=MULTI_SCALE_RATIOS,
    flip=True,
    ratios_of="image",
    window_batch_size=2,
):
    """mmseg's multi-scale + flip test (`SegTTAModel`): class probabilities at image size.

    For each ratio, the image is resized (ratio kept, OpenCV bilinear) and, with `flip`,
    also mirrored; each view's logits (whole or slide, as `settings`) are flipped back,
    resized to the image's size, softmaxed, and the probabilities averaged.

    `flip` is True (mirrored left-right, mmseg's default), False, "vertical", or a list of
    directions, e.g. `["horizontal", "vertical"]`: one more view per direction and ratio, as
    mmseg's `RandomFlip(prob=1.0, direction=...)` views in its `TestTimeAug`.

    `ratios_of="image"` scales the original image by each ratio, as mmseg 1.x does;
    `ratios_of="test_scale"` resizes it to fit `settings.scale` x ratio, as mmseg 0.x
    did when the published multi-scale numbers were computed (the same for 1024x2048
    Cityscapes frames; different for ADE20K, VOC and the 769x769 configs).
    """
    settings = settings or TestSettings.of(model)
    image = np.asarray(image)
    if ratios_of not in ("image", "test_scale"):
        raise ValueError(f"ratios_of must be 'image' or 'test_scale', got {ratios_of!r}.")
    if ratios_of == "test_scale" and not settings.scale:
        raise ValueError("ratios_of='test_scale' needs settings with a scale.")
    directions = flip_directions(flip)
    total, views = None, 0
    for ratio in ratios:
        if ratios_of == "image":
            view = rescale_by(image, ratio)
        else:
            long_edge, short_edge = settings.scale
            view = rescale(image, (int(long_edge * ratio), int(short_edge * ratio)))
        for direction in (None, *directions):
            logits = _flipped(
                _logits_of_view(model, _flipped(view, direction), settings, window_batch_size),
                direction,  # and back
            )
            probabilities = softmax(_resize_logits(logits, image.shape[:2], model.align_corners))
            total = probabilities if total is None else total + probabilities
            views += 1
    return total / views


def class_scores(
    model,
    image,
    settings,
    multi_scale=False,
    ratios=MULTI_SCALE_RATIOS,
    flip=True,
    ratios_of="image",
    window_batch_size=2,
):
    """`(H, W, classes)` scores of one image at its size, whose argmax is its class map: the
    logits of the test mode in `settings`, or with `multi_scale` the class probabilities of
    mmseg's multi-scale + flip test. `segment` and `keras_danet.evaluate` use it."""
    if multi_scale:
        return multi_scale_flip_probabilities(
            model, image, settings, ratios, flip, ratios_of, window_batch_size
        )
    return predict_logits(model, image, settings, window_batch_size)


OUTPUTS = ("labels", "probabilities", "masks")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def segment(
    model,
    images,
    settings=None,
    multi_scale=False,
    ratios=MULTI_SCALE_RATIOS,
    flip=True,
    ratios_of="image",
    window_batch_size=2,
    progress=False,
    output="labels",
):
    """Class maps (or probabilities, or named masks) at each image's own size; see
    `DANet.segment`."""
    from tqdm.auto import tqdm  # reads TQDM_* settings when imported

    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
    settings = settings or TestSettings.of(model)
    files = image_files(images)
    single = files is None and not (
        isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4)
    )
    items = files if files is not None else [images] if single else list(images)
    results = []
    for index, item in enumerate(tqdm(items, desc="segmenting", disable=not progress)):
        image = as_rgb(item, name=item if isinstance(item, str) else f"image {index}")
        scores = class_scores(
            model, image, settings, multi_scale, ratios, flip, ratios_of, window_batch_size
        )
        # Multi-scale scores are probabilities already; softmax keeps them as they are
        # only up to rounding, so they are not taken through it again.
        results.append(_output(model, scores, output, probabilities=multi_scale))
    if files is not None:
        return dict(zip(files, results, strict=True))
    return results[0] if single else results


def image_files(images):
    """The image files of a folder or a glob pattern, sorted; None for anything else (a
    path to one file, an array, a list). An empty folder or a pattern that matches no image
    is an error that names it."""
    if not isinstance(images, (str, os.PathLike)):
        return None
    path = os.fspath(images)
    if os.path.isdir(path):
        # Hidden files (macOS' "._a.jpg" beside "a.jpg") are not images, as glob agrees.
        found = [os.path.join(path, n) for n in os.listdir(path) if not n.startswith(".")]
        where = f"the folder {path}"
    elif any(character in path for character in "*?[") and not os.path.exists(path):
        found = glob.glob(path)
        where = f"the pattern {path}"
    else:
        return None
    found = sorted(f for f in found if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(f))
    if not found:
        raise FileNotFoundError(
            f"No image file in {where} (looked for {', '.join(IMAGE_SUFFIXES)})."
        )
    return found


def _output(model, scores, output, probabilities):
    if output == "labels":
        return scores.argmax(-1).astype(np.uint8 if model.num_classes <= 256 else np.int32)
    probabilities = (scores if probabilities else softmax(scores)).astype(np.float32)
    if output == "probabilities":
        return probabilities
    labels = probabilities.argmax(-1)
    dataset = model.preset.dataset
    names = dataset.class_names if dataset is not None else ()
    masks = []
    for index in np.unique(labels):
        mask = labels == index
        masks.append(
            {
                "label": names[index] if index < len(names) else f"class {index}",
                "index": int(index),
                "score": float(probabilities[..., index][mask].mean()),
                "mask": mask,
            }
        )
    return masks
