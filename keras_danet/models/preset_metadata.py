"""`preset_metadata`: what a model's weights came with, kept wherever the model is saved."""

import json
import os

from keras_danet.presets.preset import ARCHITECTURES, Preset

# The file inside a `.keras` archive's assets (Keras' `save_assets` / `load_assets` hooks).
ASSET_FILE = "preset_metadata.json"


class PresetMetadata:
    """Mixin for `DANet` and `ResNetV1c`: `preset_metadata`, a plain dict of what the weights
    came with (class names, palette, test mode and scale, where they came from).

    `from_preset` fills it from a preset's metadata.json and `save_to_preset` writes it back.
    Keras' own saving keeps it too: `model.save("m.keras")`, `ModelCheckpoint` and
    `keras.models.load_model` carry it inside the `.keras` file, so a model restored from a
    checkpoint still segments with its preset's test mode and names its classes.

    Example:
    >>> model.save("fine_tuned.keras")
    >>> keras.models.load_model("fine_tuned.keras").preset_metadata["class_names"]
    """

    @property
    def preset(self):
        """What the weights came with, typed: a `keras_danet.presets.Preset` read from
        `preset_metadata` (its serialised form): `dataset` (class names, palette), `test`
        (`TestSettings`), `metrics`, `training`, `license`...

        Example:
        >>> model = keras_danet.DANet.from_preset("danet_r50_cityscapes")
        >>> model.preset.test.mode, model.preset.dataset.class_names[:2]
        ('whole', ('road', 'sidewalk'))
        """
        architecture = next(
            cls.__name__ for cls in type(self).__mro__ if cls.__name__ in ARCHITECTURES
        )
        return Preset.from_metadata(self.preset_metadata, architecture, self.get_config())

    @property
    def preset_metadata(self):
        return self.__dict__.setdefault("_preset_metadata", {})

    @preset_metadata.setter
    def preset_metadata(self, record):
        # A plain dict, outside Keras' attribute tracking (whose TrackedDict refuses
        # `.update(key=value)`); it holds no weights.
        if not isinstance(record, dict):
            raise TypeError(f"preset_metadata must be a dict, not a {type(record).__name__}.")
        object.__setattr__(self, "_preset_metadata", dict(record))

    def save_assets(self, dir_path):
        if self.preset_metadata:
            # NumPy values (a palette given as an array) as lists; made whole before the
            # file is opened, so a value JSON cannot hold fails the save, not half a file.
            text = json.dumps(self.preset_metadata, indent=2, default=_plain)
            with open(os.path.join(dir_path, ASSET_FILE), "w") as file:
                file.write(text)

    def load_assets(self, dir_path):
        # Keras passes None for a part of the model that saved no assets.
        path = os.path.join(dir_path, ASSET_FILE) if dir_path else None
        if path is None or not os.path.exists(path):
            return  # saved with nothing on record
        try:
            with open(path) as file:
                record = json.load(file)
        except (OSError, ValueError) as error:
            raise ValueError(f"The .keras file's {ASSET_FILE} cannot be read: {error}") from None
        if not isinstance(record, dict):
            raise ValueError(
                f"The .keras file's {ASSET_FILE} holds a {type(record).__name__}, not a record."
            )
        self.preset_metadata = record


def _plain(value):
    if hasattr(value, "tolist"):  # NumPy arrays and numbers
        return value.tolist()
    raise TypeError(f"preset_metadata holds a {type(value).__name__}, which JSON cannot hold.")
