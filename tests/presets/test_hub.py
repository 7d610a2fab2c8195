"""Loading from the Hugging Face Hub through the real huggingface_hub code and cache.

The cache is laid out by hand exactly as huggingface_hub lays it out (blobs named by their
hash, snapshots/<commit>/ of symlinks, refs/main), then read with HF_HUB_OFFLINE=1.
"""

import hashlib
import os

import numpy as np
import pytest

from keras_danet import DANet
from tests.conftest import TINY, to_numpy
from tests.presets.conftest import run_python

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate_hub_cache(hub_cache, repo, folder, commit=COMMIT):
    """Puts the files of `folder` into a huggingface_hub cache as revision `commit` of `repo`."""
    root = os.path.join(hub_cache, "models--" + repo.replace("/", "--"))
    os.makedirs(os.path.join(root, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(root, "snapshots", commit), exist_ok=True)
    os.makedirs(os.path.join(root, "refs"), exist_ok=True)
    for name in sorted(os.listdir(folder)):
        data = open(os.path.join(folder, name), "rb").read()  # noqa: SIM115
        blob = hashlib.sha256(data).hexdigest()  # LFS files are named by their sha256
        with open(os.path.join(root, "blobs", blob), "wb") as file:
            file.write(data)
        os.symlink(
            os.path.join("..", "..", "blobs", blob), os.path.join(root, "snapshots", commit, name)
        )
    with open(os.path.join(root, "refs", "main"), "w") as file:
        file.write(commit)


@pytest.fixture
def hub_home(tmp_path):
    model = DANet(num_classes=19, **TINY)
    model.get_layer("pam").gamma.assign(0.25)
    source = model.save_to_preset(tmp_path / "source")
    home = tmp_path / "hf_home"
    alias_repo = DANet.presets["danet_r50_cityscapes"].hub.repo
    for repo in ("someone/danet-tiny", alias_repo):
        populate_hub_cache(str(home / "hub"), repo, source)
    images = np.random.default_rng(0).uniform(0, 255, (1, 24, 40, 3)).astype("float32")
    return home, float(to_numpy(model(images)).sum())


_LOAD = """
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import numpy as np
    import huggingface_hub
    from keras_danet import DANet
    model = DANet.from_preset({handle!r}, cache_dir={cache!r})
    images = np.random.default_rng(0).uniform(0, 255, (1, 24, 40, 3)).astype("float32")
    print("SUM", float(np.asarray(model.predict(images, verbose=0)).sum()))
    repos = [repo.repo_id for repo in huggingface_hub.scan_cache_dir().repos]
    print("CACHED", sorted(repos))
"""


# one_backend: huggingface_hub's offline cache, read in a fresh interpreter (it reads
# HF_HUB_OFFLINE when imported); loading the folder it finds is tested in-process on every
# backend (tests/presets/test_preset_folder.py).
@pytest.mark.one_backend
@pytest.mark.parametrize(
    "handle",
    [f"hf://someone/danet-tiny@{COMMIT}", "hf://someone/danet-tiny", "danet_r50_cityscapes"],
)
def test_offline_load_from_a_populated_hub_cache(tmp_path, hub_home, handle):
    home, expected = hub_home
    result = run_python(
        _LOAD.format(handle=handle, cache=str(tmp_path / "ours")),
        HF_HOME=str(home),
        HF_HUB_OFFLINE="1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    total = float(result.stdout.split("SUM ")[1].split()[0])
    assert total == pytest.approx(expected, rel=1e-5)
    assert "someone/danet-tiny" in result.stdout  # huggingface_hub recognises its own cache
    assert "loaded from the Hugging Face Hub" in result.stderr
    assert not os.path.exists(tmp_path / "ours" / "presets")  # nothing converted


@pytest.mark.one_backend
def test_unknown_revision_offline_is_a_clear_error(tmp_path, hub_home):
    home, _ = hub_home
    result = run_python(
        _LOAD.format(handle="hf://someone/danet-tiny@" + "f" * 40, cache=str(tmp_path)),
        HF_HOME=str(home),
        HF_HUB_OFFLINE="1",
    )
    assert result.returncode != 0
    assert "Could not get hf://someone/danet-tiny@ffff" in result.stderr
    assert "LocalEntryNotFoundError" in result.stderr
