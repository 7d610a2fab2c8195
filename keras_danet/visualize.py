"""Pictures: coloured class maps, overlays with a legend, and DANet's attention maps.

NumPy in, uint8 RGB arrays out; `save_png` writes any of them (Pillow). The attention
pictures follow the paper's Figure 3: for a query point, where position attention looks;
for a channel, the channel-attention-enhanced feature map.

Example:
>>> labels = model.segment("street.png")
>>> image = keras_danet.image_input.as_rgb("street.png")
>>> save_png("overlay.png", overlay_with_legend(image, labels, palette, class_names))
"""

import os

import keras
import numpy as np
from keras import ops

from keras_danet.atomic_files import atomic_write_path
from keras_danet.constants import IGNORE_INDEX


def default_palette(num_classes):
    """mmseg's colours for a dataset without a palette (RandomState(42))."""
    return [
        tuple(int(v) for v in c)
        for c in np.random.RandomState(42).randint(0, 255, (num_classes, 3))
    ]


def palette_and_names(model, num_classes=None):
    """The palette and class names of a model's preset, or mmseg's defaults."""
    preset = getattr(model, "preset", None)
    dataset = preset.dataset if preset is not None else None
    num_classes = num_classes or model.num_classes
    palette = (dataset and dataset.palette) or default_palette(num_classes)
    names = (dataset and dataset.class_names) or [f"class {i}" for i in range(num_classes)]
    return [tuple(color) for color in palette], list(names)


def colorize(labels, palette, ignore_index=IGNORE_INDEX):
    """Maps a (H, W) class map to a (H, W, 3) uint8 RGB picture with `palette[class]`.

    Pixels equal to `ignore_index` (or outside the palette) are black.

    Example:
    >>> colors = colorize(model.segment("street.png"), palette)
    """
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    picture = np.zeros(labels.shape + (3,), np.uint8)
    known = (labels >= 0) & (labels < len(palette)) & (labels != ignore_index)
    picture[known] = palette[labels[known]]
    return picture


def overlay(image, labels, palette, alpha=0.5, ignore_index=IGNORE_INDEX):
    """Blends the colour map of `labels` over an RGB `image` (0-255); returns uint8 RGB."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[:2] != np.shape(labels):
        raise ValueError(f"image is {image.shape[:2]} but labels are {np.shape(labels)}.")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be within 0-1, got {alpha}.")
    colors = colorize(labels, palette, ignore_index).astype(np.float32)
    blended = (1 - alpha) * image + alpha * colors
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def legend(class_names, palette, classes=None, row_height=18, width=180):
    """A column of colour swatches and class names (uint8 RGB), for `classes` or all."""
    from PIL import Image, ImageDraw

    classes = list(range(len(class_names))) if classes is None else list(classes)
    picture = Image.new("RGB", (width, max(1, len(classes)) * row_height + 4), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for row, index in enumerate(classes):
        top = 2 + row * row_height
        draw.rectangle(
            [4, top + 2, 4 + row_height - 4, top + row_height - 2],
            fill=tuple(int(v) for v in palette[index]),
            outline=(0, 0, 0),
        )
        draw.text((row_height + 6, top + 3), f"{index} {class_names[index]}", fill=(0, 0, 0))
    return np.asarray(picture)


def overlay_with_legend(image, labels, palette, class_names, alpha=0.5):
    """The overlay, and beside it a legend of the classes present (uint8 RGB)."""
    blended = overlay(image, labels, palette, alpha)
    present = [c for c in np.unique(labels) if c != IGNORE_INDEX and c < len(class_names)]
    key = legend(class_names, palette, present)
    height = max(blended.shape[0], key.shape[0])
    canvas = np.full((height, blended.shape[1] + key.shape[1], 3), 255, np.uint8)
    canvas[: blended.shape[0], : blended.shape[1]] = blended
    canvas[: key.shape[0], blended.shape[1] :] = key
    return canvas


def save_png(path, picture):
    """Writes an RGB (or grayscale) uint8 array as PNG; a temporary file renamed into place."""
    from PIL import Image

    path = os.fspath(path)
    with atomic_write_path(path, suffix=".png") as partial:
        Image.fromarray(np.asarray(picture, np.uint8)).save(partial, format="PNG")
    return path


def save_label_png(path, labels, palette):
    """Writes a class map as a palette PNG: its values are the class indices (what mmseg's
    dataset readers and keras_danet.data read back), and viewers show the colours."""
    from PIL import Image

    labels = np.asarray(labels)
    if labels.max(initial=0) > 255:
        raise ValueError("A palette PNG holds at most 256 classes; save the array instead.")
    picture = Image.fromarray(labels.astype(np.uint8), mode="P")
    flat = [int(v) for color in palette for v in color][: 256 * 3]
    picture.putpalette(flat + [0] * (256 * 3 - len(flat)))
    path = os.fspath(path)
    with atomic_write_path(path, suffix=".png") as partial:
        picture.save(partial, format="PNG")
    return path


def _attention_features(model, image):
    """PAM's input and CAM's output for one image, at the backbone's output stride."""
    pam, cam = model.get_layer("pam"), model.get_layer("cam")
    probe = keras.Model(model.input, [pam.input, cam.output])
    features, enhanced = probe.predict_on_batch(np.asarray(image, np.float32)[None])
    return pam, np.asarray(features), np.asarray(enhanced)


def feature_position(point, image_shape, feature_shape):
    """The feature-map cell `(row, column)` of an image point `(y, x)`."""
    y, x = point
    if not (0 <= y < image_shape[0] and 0 <= x < image_shape[1]):
        raise ValueError(
            f"The point x={x}, y={y} is outside the {image_shape[0]}x{image_shape[1]} image "
            "(height x width)."
        )
    return (
        min(int(y * feature_shape[0] / image_shape[0]), feature_shape[0] - 1),
        min(int(x * feature_shape[1] / image_shape[1]), feature_shape[1] - 1),
    )


def query_point(point=None, xy=None):
    """`(y, x)` from either form of a point: `point=(y, x)` (row, column, as NumPy indexes)
    or `xy=(x, y)` (as PIL, OpenCV and matplotlib give coordinates)."""
    if (point is None) == (xy is None):
        raise ValueError("Give the query point once: xy=(x, y), or point=(y, x).")
    return tuple(point) if xy is None else (xy[1], xy[0])


def position_attention_map(model, image, point=None, *, xy=None):
    """Where DANet's position attention looks from an image point: `xy=(x, y)`, or
    `point=(y, x)` (row, column).

    Returns `(attention, cell)`: the attention row of that query as a map over the feature
    grid (it sums to 1), and the query's cell in that grid.

    Example:
    >>> attention, cell = visualize.position_attention_map(model, image, xy=(140, 150))
    """
    point = query_point(point, xy)
    pam, features, _ = _attention_features(model, image)
    rows, columns = features.shape[1:3]
    cell = feature_position(point, np.shape(image)[:2], (rows, columns))
    attention = pam.attention_for(features, [cell[0] * columns + cell[1]])
    return np.asarray(ops.convert_to_numpy(attention)).reshape(rows, columns), cell


def channel_attention_map(model, image, channel):
    """Channel `channel` of the channel-attention-enhanced features (the CAM's output)."""
    _, _, enhanced = _attention_features(model, image)
    if not 0 <= channel < enhanced.shape[-1]:
        raise ValueError(f"channel must be within 0-{enhanced.shape[-1] - 1}, got {channel}.")
    return enhanced[0, :, :, channel]


def heatmap(values, size, colormap="jet"):
    """A map resized bilinearly to `size` (H, W), scaled to 0-1, coloured (uint8 RGB)."""
    from matplotlib import colormaps

    resized = _resized(values, size)
    low, high = float(resized.min()), float(resized.max())
    scaled = (resized - low) / (high - low) if high > low else np.zeros_like(resized)
    return (colormaps[colormap](scaled)[..., :3] * 255 + 0.5).astype(np.uint8)


def _resized(values, size):
    from PIL import Image

    resized = Image.fromarray(np.asarray(values, np.float32), mode="F")
    return np.asarray(resized.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def attention_figure(
    image, attention, point=None, channel_map=None, channel=None, title="", *, xy=None
):
    """The paper's Figure 3 for one image: the image with the query point, the position
    attention over it, and optionally a channel map. Returns a uint8 RGB picture.

    Each map has a colour bar in its own units; the position attention's marks the uniform
    level 1/N (N feature cells), so a flat map is not drawn as strong peaks. Drawn without
    pyplot: matplotlib's backend (a notebook's inline one) is left as it is.

    Example:
    >>> attention, _ = visualize.position_attention_map(model, image, xy=(140, 150))
    >>> picture = visualize.attention_figure(image, attention, xy=(140, 150))
    >>> visualize.save_png("attention.png", picture)
    """
    point = query_point(point, xy)
    figure = _attention_plot(image, attention, point, channel_map, channel, title)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def _attention_plot(image, attention, point, channel_map, channel, title):
    """The matplotlib `Figure` of `attention_figure`, on an Agg canvas of its own."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(image)
    size = image.shape[:2]
    panels = 3 if channel_map is not None else 2
    figure = Figure(figsize=(4.6 * panels, 4.2 * size[0] / size[1] + 0.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    axes[0].imshow(image.astype(np.uint8))
    axes[0].set_title("image and query point")

    uniform = 1.0 / np.size(attention)
    values = _resized(attention, size)
    axes[1].imshow(image.astype(np.uint8))
    shown = axes[1].imshow(
        values,
        cmap="jet",
        alpha=0.55,
        # The scale always holds the uniform level, so its mark is on the bar.
        vmin=min(float(values.min()), uniform),
        vmax=max(float(values.max()), uniform),
    )
    bar = figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.02)
    bar.ax.axhline(uniform, color="black", linewidth=2)
    bar.set_label(f"attention weight (line: uniform 1/{np.size(attention)})")
    axes[1].set_title("position attention")
    for axis in axes[:2]:
        axis.plot(point[1], point[0], marker="+", color="white", markersize=16, mew=3)
        axis.plot(point[1], point[0], marker="+", color="black", markersize=12, mew=1.5)
    if channel_map is not None:
        shown = axes[2].imshow(_resized(channel_map, size), cmap="viridis")
        figure.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.02)
        axes[2].set_title(f"channel attention, channel {channel}")
    for axis in axes:
        axis.set_axis_off()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
