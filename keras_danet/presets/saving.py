"""Writing preset folders: config.json, model.weights.h5 and metadata.json (keras-hub's layout)."""

import json
import os
import shutil
import tempfile

import keras

from keras_danet.presets.files import replace_directory, sha256_file
from keras_danet.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
PRESET_FORMAT_VERSION = 1


def save_to_preset(model, directory, metadata=None):
    """Writes `model` as a preset folder that `DANet.from_preset(directory)` loads.

    The folder is written under a temporary name and renamed when complete, so an interrupted
    save never leaves a half-written preset. `metadata` (JSON-ready) is stored beside the sha256
    of the weights, which every load verifies.

    Example:
    >>> model.save_to_preset("my_danet")
    >>> keras_danet.DANet.from_preset("my_danet")
    """
    directory = os.path.abspath(os.fspath(directory))
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.partial.", dir=parent)
    try:
        with open(os.path.join(staging, CONFIG_FILE), "w") as file:
            from keras_danet.models.danet import EXECUTION_SETTINGS

            config = keras.saving.serialize_keras_object(model)
            # A preset carries the recipe, not how this machine ran it (see DANet).
            for setting in EXECUTION_SETTINGS:
                (config.get("compile_config") or {}).pop(setting, None)
            json.dump(config, file, indent=2)
        weights = os.path.join(staging, WEIGHTS_FILE)
        model.save_weights(weights)
        record = dict(metadata or {})
        record.update(
            format_version=PRESET_FORMAT_VERSION,
            keras_danet_version=__version__,
            keras_version=keras.__version__,
            num_classes=model.num_classes,
            parameter_count=model.count_params(),
            weights_sha256=sha256_file(weights),
        )
        with open(os.path.join(staging, METADATA_FILE), "w") as file:
            json.dump(record, file, indent=2)
        replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory
