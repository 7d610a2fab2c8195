"""mmseg's training augmentation for DANet, transform for transform.

In mmseg's order: `RandomResize` (keep ratio, ratio 0.5-2.0 of a base scale), `RandomCrop`
(with `cat_max_ratio`), `RandomFlip` (horizontal, p = 0.5), `PhotoMetricDistortion`, and
the padding of mmseg's data preprocessor. For configs that use them, mmseg's other resizing
and padding transforms are options: `RandomResize(keep_ratio=False)`, `RandomChoiceResize`,
`ResizeToMultiple`, `Pad(size_divisor=...)` and VOC's `Pad(size=crop_size)`. Each transform
is a function of its image, label map and *drawn parameters*, so that it can be checked
against mmseg's own transform with the draws fixed (tests/data/test_augmentation_parity.py);
`Augmentation` draws the parameters from the same distributions as mmseg and applies the
chain.

Images are RGB uint8 until the final padding; label maps uint8 and only ever resized with
nearest-neighbour. OpenCV does the resizing and colour conversions, as in mmcv.
"""

import dataclasses

import numpy as np

from keras_danet.constants import IGNORE_INDEX
from keras_danet.data.images import opencv

# mmseg's normalisation mean, RGB 0-255. mmseg pads after normalising, with 0: in the raw
# RGB space a model normalising internally sees, that is this colour.
PAD_COLOR = (123.675, 116.28, 103.53)


def rescaled_size(height, width, scale):
    """mmcv's `rescale_size`: `(new_height, new_width)` fitting inside `scale`, ratio kept.

    `scale` is `(long_edge, short_edge)` in either order, as mmseg's `(2048, 512)`.
    """
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def resize(image, label, scale, keep_ratio=True):
    """mmcv's `Resize(scale, keep_ratio)`: the image bilinearly, the label map nearest.

    `scale` is `(width, height)` as mmseg writes it. With `keep_ratio` the image is fitted
    inside it, aspect ratio kept (it can grow); without, it is stretched to exactly that size.
    """
    cv2 = opencv()
    if keep_ratio:
        height, width = rescaled_size(image.shape[0], image.shape[1], scale)
    else:
        width, height = int(scale[0]), int(scale[1])
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, label


def random_resize(image, label, scale, ratio, keep_ratio=True):
    """mmseg's `RandomResize(scale, ratio_range, keep_ratio)` for a drawn `ratio`.

    The target scale is `(int(scale[0] * ratio), int(scale[1] * ratio))`, then `resize`.
    """
    return resize(image, label, ratio_scale(scale, ratio), keep_ratio)


def ratio_scale(scale, ratio):
    """mmcv's `RandomResize._random_sample_ratio`: a base scale times a drawn ratio."""
    return int(scale[0] * ratio), int(scale[1] * ratio)


def resize_to_multiple(image, label, size_divisor):
    """mmseg's `ResizeToMultiple(size_divisor)`: each side resized up to the next multiple.

    The image bilinearly, the label map nearest (mmcv's `imresize_to_multiple`).
    """
    height = -(-image.shape[0] // size_divisor) * size_divisor
    width = -(-image.shape[1] // size_divisor) * size_divisor
    return resize(image, label, (width, height), keep_ratio=False)


def pad_to_multiple(image, label, size_divisor, image_value=0, label_value=IGNORE_INDEX):
    """mmcv's `Pad(size_divisor)` with its default `pad_val=dict(img=0, seg=255)`.

    Unlike the data preprocessor's padding, it runs before normalisation, so the image is
    padded (bottom and right) with raw pixel value 0, black; the dtype is kept.
    """
    height = -(-image.shape[0] // size_divisor) * size_divisor
    width = -(-image.shape[1] // size_divisor) * size_divisor
    return pad_raw(image, label, (height, width), image_value, label_value)


def pad_raw(image, label, size, image_value=0, label_value=IGNORE_INDEX):
    """mmcv's `Pad(size=...)` with its default `pad_val=dict(img=0, seg=255)`: bottom and
    right up to `size` (height, width), before normalisation (black), the dtype kept.

    mmcv's `size` is (width, height); VOC's config passes its square crop size.
    """
    height, width = max(size[0], image.shape[0]), max(size[1], image.shape[1])
    padded = np.full((height, width) + image.shape[2:], image_value, image.dtype)
    padded[: image.shape[0], : image.shape[1]] = image
    padded_label = np.full((height, width), label_value, label.dtype)
    padded_label[: label.shape[0], : label.shape[1]] = label
    return padded, padded_label


def crop_is_acceptable(label, cat_max_ratio, ignore_index=IGNORE_INDEX):
    """mmseg's test: more than one labelled class, none above `cat_max_ratio` of the pixels."""
    counts = np.bincount(label.ravel(), minlength=256)
    counts = counts[np.arange(256) != ignore_index]
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio


def choose_crop(label, crop_size, cat_max_ratio, draw_offset, ignore_index=IGNORE_INDEX):
    """mmseg's `RandomCrop.crop_bbox`: `(top, bottom, left, right)` of the crop.

    `draw_offset(margin_height, margin_width)` draws a top-left corner, each in
    `[0, margin]`. With `cat_max_ratio < 1`, a crop whose largest class covers that share
    of its labelled pixels (or that holds one class only) is drawn again, up to 10 times;
    the last draw is kept.
    """
    margin_height = max(label.shape[0] - crop_size[0], 0)
    margin_width = max(label.shape[1] - crop_size[1], 0)

    def draw():
        top, left = draw_offset(margin_height, margin_width)
        return top, top + crop_size[0], left, left + crop_size[1]

    box = draw()
    if cat_max_ratio < 1.0:
        for _ in range(10):
            if crop_is_acceptable(crop(label, box), cat_max_ratio, ignore_index):
                break
            box = draw()
    return box


def crop(array, box):
    top, bottom, left, right = box
    return array[top:bottom, left:right]


def flip(image, label):
    """Horizontal flip of both."""
    return image[:, ::-1], label[:, ::-1]


@dataclasses.dataclass(frozen=True)
class PhotometricParameters:
    """The draws of one `PhotoMetricDistortion`; `None` leaves a step out.

    `contrast_first` applies the contrast before the saturation and hue (mmseg's mode 1),
    else after them.
    """

    brightness: float | None = None
    contrast: float | None = None
    contrast_first: bool = False
    saturation: float | None = None
    hue: int | None = None


def _convert(values, alpha=1.0, beta=0.0):
    # mmseg's PhotoMetricDistortion.convert: float32 arithmetic, clip, truncate to uint8.
    return np.clip(values.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(image, parameters):
    """mmseg's `PhotoMetricDistortion` with drawn `parameters`, on an RGB uint8 image.

    Brightness (add), then contrast (multiply) either here or last, saturation (multiply
    the S of OpenCV's HSV) and hue (add to H, modulo 180). OpenCV's RGB<->HSV on RGB gives
    exactly what mmseg's BGR<->HSV gives on BGR.
    """
    cv2 = opencv()
    p = parameters
    if p.brightness is not None:
        image = _convert(image, beta=p.brightness)
    if p.contrast_first and p.contrast is not None:
        image = _convert(image, alpha=p.contrast)
    if p.saturation is not None:
        hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = _convert(hsv[:, :, 1], alpha=p.saturation)
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if p.hue is not None:
        hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + p.hue) % 180
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not p.contrast_first and p.contrast is not None:
        image = _convert(image, alpha=p.contrast)
    return image


def pad(image, label, size, image_value=PAD_COLOR, label_value=IGNORE_INDEX):
    """Pads bottom and right to `size` (height, width): a float32 image and a uint8 label.

    mmseg's data preprocessor pads the normalised image with 0, which is `PAD_COLOR` in raw
    RGB, and the label map with 255.
    """
    height, width = max(size[0], image.shape[0]), max(size[1], image.shape[1])
    padded = np.empty((height, width, 3), np.float32)
    padded[...] = np.asarray(image_value, np.float32)
    padded[: image.shape[0], : image.shape[1]] = image
    padded_label = np.full((height, width), label_value, np.uint8)
    padded_label[: label.shape[0], : label.shape[1]] = label
    return padded, padded_label


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """mmseg's DANet training pipeline: resize, crop, flip, photometric distortion, pad.

    The defaults are every DANet config's; `scale` and `crop_size` are per dataset:
    Cityscapes `(2048, 1024)` and `(512, 1024)` (769 configs: `(2049, 1025)`, `(769, 769)`),
    ADE20K and VOC `(2048, 512)` and `(512, 512)`. The other options are for copying an
    mmseg config that uses other transforms; in the chain they come in this order: resize,
    `resize_to_multiple`, crop, flip, photometric distortion, `pad_size_divisor`, and last
    the data preprocessor's padding to `crop_size`.

    Args:
        scale: `RandomResize`'s base scale, `(width, height)` as mmseg writes it; or a list
            of scales, one picked uniformly per image (`RandomChoiceResize(scales)`, no
            ratio drawn).
        crop_size: `(height, width)` of the crops.
        ratio_range: the resize ratio is drawn uniformly in it.
        keep_ratio: `False` stretches the image to the drawn scale exactly
            (`RandomResize(..., keep_ratio=False)`) instead of fitting it inside.
        cat_max_ratio: `RandomCrop`'s bound on the largest class's share (1 disables it).
        flip_probability: of a horizontal flip.
        photometric: apply `PhotoMetricDistortion` (brightness 32, contrast and saturation
            0.5-1.5, hue 18).
        ignore_index: the label of unlabelled pixels.
        resize_to_multiple: `ResizeToMultiple(size_divisor)` after the resize.
        pad_size_divisor: mmcv's `Pad(size_divisor)` after the distortion: black (raw 0)
            image and `ignore_index` label up to a multiple; the crops then pad to at least
            `crop_size` as before.
        pad_to_crop: mmcv's `Pad(size=crop_size)` after the distortion, as VOC's configs
            (pascal_voc12_aug.py): a crop smaller than `crop_size` is padded with black (raw
            0) and `ignore_index` before normalisation, instead of the data preprocessor's
            normalised 0 (the mean colour) of the other configs.

    Example:
    >>> augment = Augmentation(scale=(2048, 1024), crop_size=(512, 1024))
    >>> image, label = augment(image, label, np.random.default_rng(0))
    >>> multi_scale = Augmentation(scale=[(2048, 512), (2048, 640)], crop_size=(512, 512))
    """

    scale: tuple
    crop_size: tuple
    ratio_range: tuple = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_probability: float = 0.5
    photometric: bool = True
    ignore_index: int = IGNORE_INDEX
    brightness_delta: int = 32
    contrast_range: tuple = (0.5, 1.5)
    saturation_range: tuple = (0.5, 1.5)
    hue_delta: int = 18
    keep_ratio: bool = True
    resize_to_multiple: int | None = None
    pad_size_divisor: int | None = None
    pad_to_crop: bool = False

    def __post_init__(self):
        try:
            scales = self.scales
        except TypeError:
            scales = []
        if not scales or any(
            len(scale) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in scale)
            for scale in scales
        ):
            raise ValueError(
                "scale must be (width, height) in positive integers, or a list of them; "
                f"got {self.scale!r}."
            )
        for name in ("resize_to_multiple", "pad_size_divisor"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, np.integer)) and value > 0):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")

    @property
    def chooses_scale(self):
        """Whether `scale` is a list of scales to choose from (`RandomChoiceResize`)."""
        return len(self.scale) > 0 and all(isinstance(v, (list, tuple)) for v in self.scale)

    @property
    def scales(self):
        """The candidate scales, or `[scale]` when a ratio is drawn instead."""
        return [tuple(v) for v in self.scale] if self.chooses_scale else [tuple(self.scale)]

    def draw_ratio(self, rng):
        low, high = self.ratio_range
        return low + rng.random() * (high - low)

    def draw_scale(self, rng):
        """The target scale of the resize: a ratio times `scale`, or one of the scales."""
        if self.chooses_scale:  # mmcv's RandomChoiceResize: np.random.randint(len(scales))
            return self.scales[int(rng.integers(len(self.scales)))]
        return ratio_scale(self.scale, self.draw_ratio(rng))

    def draw_photometric(self, rng):
        """Draws like mmseg: each step with probability 0.5, in mmseg's order."""

        def maybe(draw):
            return draw() if rng.integers(2) else None

        brightness = maybe(lambda: rng.uniform(-self.brightness_delta, self.brightness_delta))
        contrast_first = bool(rng.integers(2))
        contrast = maybe(lambda: rng.uniform(*self.contrast_range)) if contrast_first else None
        saturation = maybe(lambda: rng.uniform(*self.saturation_range))
        hue = maybe(lambda: int(rng.integers(-self.hue_delta, self.hue_delta)))
        if not contrast_first:
            contrast = maybe(lambda: rng.uniform(*self.contrast_range))
        return PhotometricParameters(brightness, contrast, contrast_first, saturation, hue)

    def __call__(self, image, label, rng):
        """One augmented `(float32 image, uint8 label)` of `crop_size`, drawing from `rng`."""
        return self.apply(
            image,
            label,
            target_scale=self.draw_scale(rng),
            draw_offset=lambda height, width: (
                int(rng.integers(height + 1)),
                int(rng.integers(width + 1)),
            ),
            flip_horizontally=lambda: rng.random() < self.flip_probability,
            photometric=lambda: self.draw_photometric(rng),
        )

    def apply(
        self,
        image,
        label,
        ratio=None,
        draw_offset=None,
        flip_horizontally=None,
        photometric=None,
        *,
        target_scale=None,
    ):
        """The chain with given draws: the resize's `ratio` (or its `target_scale`), a
        crop-corner drawer, then callables giving the flip decision and the
        `PhotometricParameters` (called in mmseg's order)."""
        if target_scale is None:
            target_scale = ratio_scale(self.scale, ratio)
        image, label = resize(image, label, target_scale, self.keep_ratio)
        if self.resize_to_multiple:
            image, label = resize_to_multiple(image, label, self.resize_to_multiple)
        box = choose_crop(label, self.crop_size, self.cat_max_ratio, draw_offset, self.ignore_index)
        image, label = crop(image, box), crop(label, box)
        if flip_horizontally():
            image, label = flip(image, label)
        if self.photometric:
            image = photometric_distortion(image, photometric())
        if self.pad_size_divisor:
            image, label = pad_to_multiple(
                image, label, self.pad_size_divisor, label_value=self.ignore_index
            )
        if self.pad_to_crop:
            image, label = pad_raw(image, label, self.crop_size, label_value=self.ignore_index)
        return pad(image, label, self.crop_size, label_value=self.ignore_index)
