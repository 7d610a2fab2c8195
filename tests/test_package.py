import os
import subprocess
import sys

import keras_danet
from tests.helpers import hiding


def test_public_api_is_small():
    assert sorted(keras_danet.__all__) == sorted(
        [
            "ChannelAttention",
            "DANet",
            "PositionAttention",
            "Preset",
            "PresetError",
            "ResNetV1c",
            "__version__",
            "config",
            "convert_mmseg_checkpoint",
            "data",
            "distributed",
            "evaluate",
            "export",
            "list_presets",
            "training",
            "upload_preset",
        ]
    )


def test_import_needs_only_the_core_dependencies():
    # Keras needs one backend framework (even its "numpy" backend imports jax); keras_danet
    # must add nothing to it: torch, tensorflow and Pillow are hidden from this import.
    code = (
        hiding("torch", "tensorflow", "PIL") + "import keras_danet\n"
        "print('imported', keras_danet.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, KERAS_BACKEND="jax"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"imported {keras_danet.__version__}" in result.stdout
