"""The examples run as shipped: the notebook headless, the scripts on tiny settings."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_danet import data
from tests.conftest import fixture_path

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _run(script, *arguments, cwd=None):
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=os.path.dirname(EXAMPLES)),
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result.stdout


@pytest.mark.one_backend
def test_quickstart_notebook_runs_headless(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.read(os.path.join(EXAMPLES, "quickstart.ipynb"), as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    text = "".join(outputs)
    assert "attention sums to 1.0000" in text and "mIoU" in text
    images = [
        o
        for cell in notebook.cells
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2  # the overlay and the attention figure


@pytest.mark.one_backend
def test_finetune_folder_script(tmp_path):
    out = _run(
        "finetune_folder.py",
        "--out",
        str(tmp_path),
        "--scenes",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--crop",
        "32",
        "48",
    )
    assert "Saved" in out
    for name in ("config.json", "model.weights.h5", "metadata.json"):
        assert os.path.isfile(tmp_path / "preset" / name)


@pytest.mark.one_backend
def test_convert_and_evaluate_script(tmp_path):
    # A folder dataset in Cityscapes' 19 classes for the tiny Cityscapes checkpoint.
    images, labels = data.synthetic_scenes(2, 48, 64, seed=10)
    cityscapes_ids = np.array([10, 0, 8, 13] + [255] * 252, np.uint8)[labels]
    for sub in ("images", "masks"):
        os.makedirs(tmp_path / "data" / sub)
    for index, (image, label) in enumerate(zip(images, cityscapes_ids, strict=True)):
        Image.fromarray(image).save(tmp_path / "data" / "images" / f"{index}.png")
        Image.fromarray(label).save(tmp_path / "data" / "masks" / f"{index}.png")
    classes = ",".join(data.datasets.CITYSCAPES.class_names)
    out = _run(
        "convert_and_evaluate.py",
        fixture_path("danet_r50_tiny"),
        "--out",
        str(tmp_path / "converted"),
        "--dataset",
        "folder",
        "--data-root",
        str(tmp_path / "data"),
        "--classes",
        classes,
        "--preset",
        "danet_r50_cityscapes",
        "--json",
        str(tmp_path / "result.json"),
    )
    assert "converted to" in out and "mIoU" in out
    assert os.path.isfile(tmp_path / "result.json")
