import importlib.util
import os
import subprocess
import sys

import keras_danet


def test_public_api_is_small():
    assert sorted(keras_danet.__all__) == sorted(
        [
            "ChannelAttention",
            "DANet",
            "PositionAttention",
            "ResNetV1c",
            "__version__",
            "convert_mmseg_checkpoint",
        ]
    )


def test_import_needs_only_the_core_dependencies():
    # torch and tensorflow hidden; keras runs on whichever other backend is installed.
    backend = "jax" if importlib.util.find_spec("jax") else "numpy"
    code = (
        "import sys\n"
        "sys.modules['torch'] = None; sys.modules['tensorflow'] = None\n"
        "import keras_danet\n"
        "print('imported', keras_danet.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, KERAS_BACKEND=backend),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"imported {keras_danet.__version__}" in result.stdout
