"""The README's code blocks work as written.

Every fenced block in README.md is marked `<!-- readme-test: run -->` or
`<!-- readme-test: skip (why) -->` on the line before it; the `run` blocks are executed
here, each in a fresh process in an empty folder, on the backend under test. The only
edits: the fine-tuning block gets the folder it reads (`my_data/`), the bundled demo preset
in place of a 190 MB download, and one epoch.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<marker>run|skip)(?P<why>[^>]*)-->\n)?```(?P<language>\w*)\n"
    r"(?P<code>.*?)```",
    re.DOTALL,
)
# The bundled preset and one epoch. (The folder's training crops default to the images'
# size: no edit since data.folder stopped upscaling small images into 512x512 crops.)
FINE_TUNING_EDITS = {
    '"danet_r50_ade20k"': '"danet_demo_shapes"',
    "epochs=20": "epochs=1",
}


def _blocks():
    return list(BLOCK.finditer(README.read_text()))


def _line(block):
    return README.read_text()[: block.start()].count("\n") + 1


def _runnable(language):
    return [
        pytest.param(block["code"], id=f"line {_line(block)}")
        for block in _blocks()
        if block["marker"] == "run" and block["language"] == language
    ]


def _run(command, cwd, **kwargs):
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    # The virtual environment's `python` and `keras-danet` come first, as after `activate`.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, **kwargs
    )
    assert result.returncode == 0, f"{command!r} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_code_block_says_whether_the_tests_run_it():
    blocks = _blocks()
    assert len(blocks) >= 6
    # Code in a language needs a marker; plain blocks (diagrams, the layout) are not code.
    unmarked = [b["code"].splitlines()[0] for b in blocks if b["language"] and not b["marker"]]
    assert not unmarked, f"README blocks without a readme-test marker: {unmarked}"
    for block in blocks:
        if block["marker"] == "skip":
            assert block["why"].strip(), f"a skipped block needs a reason: {block['code'][:60]}"
    assert len(_runnable("python")) >= 2 and len(_runnable("bash")) >= 1


def _make_my_data(root):
    """Two classes (background, crack): JPEG images, PNG masks, train and val lists."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names = [f"photo_{index:02d}" for index in range(12)]
    for name in names:
        image = rng.integers(90, 160, size=(72, 104, 3), dtype=np.uint8)
        mask = np.zeros((72, 104), np.uint8)
        row = rng.integers(10, 60)
        mask[row : row + 4] = 1
        image[mask == 1] = 30
        Image.fromarray(image).save(root / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    (root / "train.txt").write_text("".join(f"{name}\n" for name in names[:10]))
    (root / "val.txt").write_text("".join(f"{name}\n" for name in names[10:]))


@pytest.mark.parametrize("code", _runnable("python"))
@pytest.mark.one_backend
def test_python_block_runs(code, tmp_path):
    if "my_data/" in code:
        _make_my_data(tmp_path / "my_data")
        for before, after in FINE_TUNING_EDITS.items():
            assert before in code, f"the fine-tuning block no longer has {before}"
            code = code.replace(before, after)
    _run([sys.executable, "-c", code], tmp_path)
    written = {path.name for path in tmp_path.iterdir()}
    for name in re.findall(r"\"([\w./]+\.png)\"", code):
        assert name in written, f"the block should have written {name}"
        assert Image.open(tmp_path / name).size[0] > 0
    if "save_to_preset" in code:
        assert (tmp_path / "my_danet" / "model.weights.h5").is_file()


@pytest.mark.parametrize("code", _runnable("bash"))
@pytest.mark.one_backend
def test_shell_block_runs(code, tmp_path):
    output = _run(["bash", "-euo", "pipefail", "-c", code], tmp_path)
    for match in re.finditer(r"--out (\S+)", code):
        assert (tmp_path / match[1]).exists(), f"nothing at {match[1]}"
    if "keras-danet evaluate" in code:
        assert "mIoU" in output
