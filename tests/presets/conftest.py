import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from keras_danet import DANet
from keras_danet.presets import HubRepo, MmsegCheckpoint
from keras_danet.presets.table import checkpoint_url
from tests.conftest import fixture_path

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_preset(sha256_prefix=None, fixture="danet_r50_tiny"):
    """The R50 Cityscapes alias's preset, pointed at the tiny mmseg fixture.

    Everything but the checkpoint file name (whose suffix is the hash the download is checked
    against) and the Hub repo (which does not exist) is the real table entry.
    """
    if sha256_prefix is None:
        with open(fixture_path(fixture), "rb") as file:
            sha256_prefix = hashlib.sha256(file.read()).hexdigest()[:8]
    base = DANet.presets["danet_r50_cityscapes"]
    stem = base.source.path.rsplit("-", 1)[0]
    return dataclasses.replace(
        base,
        name="danet_tiny_test",
        source=MmsegCheckpoint(f"{stem}-{sha256_prefix}.pth"),
        hub=HubRepo("keras-danet-tests/no-such-repo"),
    )


def preset_code(preset):
    """One line of Python that rebuilds `preset` (a `tiny_preset`) in a fresh interpreter."""
    return (
        "import dataclasses; from keras_danet import DANet; "
        "from keras_danet.presets import HubRepo, MmsegCheckpoint; "
        "preset = dataclasses.replace(DANet.presets['danet_r50_cityscapes'], "
        f"name={preset.name!r}, source=MmsegCheckpoint({preset.source.path!r}), "
        f"hub=HubRepo({preset.hub.repo!r}))"
    )


def make_mirror(folder, preset, fixture="danet_r50_tiny"):
    """A folder laid out like download.openmmlab.com/mmsegmentation/, holding a fixture."""
    mirror = "file://" + os.path.abspath(folder)
    destination = checkpoint_url(preset, mirror).removeprefix("file://")
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    shutil.copy(fixture_path(fixture), destination)
    return mirror


@pytest.fixture
def mirrored_preset(tmp_path):
    preset = tiny_preset()
    return preset, make_mirror(tmp_path / "mirror", preset)


def run_python(code, **environment):
    """Runs `code` in a fresh interpreter (Hub settings are read at import time)."""
    env = dict(os.environ, PYTHONPATH=REPOSITORY, **environment)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=REPOSITORY,
    )
