"""What the presets package knows of models: only what the models tell it.

The model classes register themselves (`register_model`, as they are defined) and the
converters of original checkpoints register by architecture (`register_converter`), so that
the loader builds, checks and converts by name and imports no model: models sit above
presets, as keras-hub's sit above its `preset_utils`.
"""

import keras

from keras_danet.presets.files import PresetError

_MODELS = {}
_CONVERTERS = {}


def register_model(cls):
    """Allows `cls` (a Keras-serialisable model class) to be built from a preset's
    config.json. Used as a class decorator below `keras.saving.register_keras_serializable`."""
    _MODELS[keras.saving.get_registered_name(cls)] = cls
    return cls


def model_names():
    """The registered names a config.json may describe: a preset is data, not a program."""
    return tuple(_MODELS)


def model_class(registered_name):
    """The class registered under `registered_name`, or None."""
    return _MODELS.get(registered_name)


def register_converter(architecture, convert, check=None):
    """`convert(path, preset, url)` turns the original checkpoint of a preset of
    `architecture` (a `Preset`'s `architecture`, as "DANet"), downloaded from `url` to
    `path`, into a model; `check()`, if given, raises an `ImportError` before anything is
    downloaded when the conversion cannot run here."""
    _CONVERTERS[architecture] = (convert, check)


def converter(architecture):
    """`(convert, check)` for `architecture`; `PresetError` if none is registered."""
    if architecture not in _CONVERTERS:
        raise PresetError(
            f"No converter of original {architecture} checkpoints is registered (known: "
            f"{', '.join(sorted(_CONVERTERS)) or 'none'})."
        )
    return _CONVERTERS[architecture]
