"""The `keras-danet` command: every subcommand, its files, its exit codes and messages."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_danet import DANet, data, list_presets
from keras_danet.cli import main
from tests.conftest import fixture_path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    images, _ = data.synthetic_scenes(2, 48, 72, seed=8)
    paths = []
    for index, image in enumerate(images):
        paths.append(str(root / f"scene_{index}.png"))
        Image.fromarray(image).save(paths[-1])
    return root, paths


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("danet_r101_d8_cityscapes_512x1024_40k", "danet_r50_ade20k", "danet_demo_shapes"):
        assert name in out
    assert "80.52" in out  # the R101 Cityscapes mIoU
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert len(rows) == len(list_presets(include_aliases=False))
    assert "backbone" in rows["resnet101_v1c"] and "ImageNet-1k" in rows["resnet101_v1c"]
    assert "DANet, bundled" in rows["danet_demo_shapes"]


def test_upload_shares_a_preset_folder(tmp_path, capsys, monkeypatch):
    from tests.presets.hub_stand_in import HubStandIn

    folder = DANet.presets["danet_demo_shapes"].source.folder
    own = tmp_path / "mine"
    own.mkdir()
    for name in ("config.json", "model.weights.h5", "metadata.json"):
        shutil.copy(os.path.join(folder, name), own / name)
    monkeypatch.setenv("HF_TOKEN", "hf_cli_token")
    with HubStandIn(tmp_path / "hub", "hf_cli_token") as hub:
        arguments = ["upload", str(own), "hf://me/demo", "--endpoint", hub.endpoint]
        assert main(["--quiet", *arguments]) == 0
        (oid,) = hub.repos["me/demo"]["commits"]
        assert f"DANet.from_preset('hf://me/demo@{oid}')" in capsys.readouterr().out
        assert main(["--quiet", "upload", str(tmp_path), "hf://me/demo"]) == 2
        assert "not a complete preset folder" in capsys.readouterr().err


def test_predict_writes_class_maps_and_overlays(scenes, capsys):
    root, paths = scenes
    out = root / "predictions"
    assert main(["--quiet", "predict", *paths, "--out", str(out), "--overlay"]) == 0
    model = DANet.from_preset("danet_demo_shapes")
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        with Image.open(out / f"{stem}.png") as file:
            np.testing.assert_array_equal(np.asarray(file), model.segment(path))
        with Image.open(out / f"{stem}_overlay.png") as file:
            assert file.size[0] > 72 and file.size[1] >= 48  # overlay and legend
    out = capsys.readouterr().out
    assert "wrote 2 class maps" in out
    # The preset used is named, the default one too (4 classes: sky, road, grass, object).
    assert "preset danet_demo_shapes: " in out and "(4 classes: sky, road, grass" in out


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: danet_demo_shapes)" in text and "default: None" not in text


def test_demo_scores_and_draws(tmp_path, capsys):
    assert main(["--quiet", "demo", "--out", str(tmp_path), "--images", "8"]) == 0
    out = capsys.readouterr().out
    assert "held-out mIoU" in out and "mIoU" in out
    for name in ("overlay.png", "attention.png"):
        with Image.open(tmp_path / name) as file:
            assert file.size[0] > 100


def test_attention_picture(scenes, tmp_path):
    _, paths = scenes
    out = tmp_path / "attention.png"
    assert main(["--quiet", "attention", paths[0], "--point", "40,30", "--out", str(out)]) == 0
    with Image.open(out) as file:
        by_point = np.asarray(file)
        assert file.mode == "RGB" and file.size[0] > file.size[1]
    out.unlink()
    assert main(["--quiet", "attention", paths[0], "--xy", "30,40", "--out", str(out)]) == 0
    with Image.open(out) as file:
        np.testing.assert_array_equal(np.asarray(file), by_point)  # the same point


def test_convert_then_load(tmp_path):
    folder = tmp_path / "converted"
    assert main(["convert", fixture_path("danet_r50_tiny"), str(folder)]) == 0
    model = DANet.from_preset(str(folder))
    assert model.num_classes == 19


def test_evaluate_and_check_a_folder_dataset(tmp_path, capsys):
    root = data.save_synthetic_scenes(str(tmp_path / "scenes"), 4, 48, 72, seed=9)
    folder = [
        "--dataset",
        "folder",
        "--data-root",
        root,
        "--img-suffix",
        ".png",
        "--classes",
        "sky,road,grass,object",
    ]
    report = tmp_path / "metrics.json"
    assert (
        main(
            ["--quiet", "evaluate", "--preset", "danet_demo_shapes", *folder, "--json", str(report)]
            + ["--metrics", "mIoU,mDice", "--nan-to-num", "0"]
        )
        == 0
    )
    assert "mDice" in capsys.readouterr().out
    with open(report) as file:
        record = json.load(file)
    assert set(record["per_class"]) == {"sky", "road", "grass", "object"}
    assert set(record["per_class"]["sky"]) == {"IoU", "Acc", "Dice"} and record["mDice"] > 0
    assert main(["--quiet", "check-data", *folder]) == 0
    Image.fromarray(np.full((48, 72), 9, np.uint8)).save(f"{root}/masks/scene_00001.png")
    assert main(["--quiet", "check-data", *folder]) == 1
    assert "label values 9" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments, reason",
    [
        (["predict", "missing.png", "--out", "x"], "No image file at missing.png"),
        (["predict", "x.png", "--preset", "danet_r50_citysc", "--out", "x"], "Did you mean"),
        (
            ["evaluate", "--preset", "danet_demo_shapes", "--metrics", "mIoU,mAP"]
            + ["--dataset", "folder", "--data-root", "missing", "--classes", "a,b"],
            "Unknown metrics ['mAP']",
        ),
    ],
)
def test_bad_input_exits_2_with_a_one_line_reason(arguments, reason, capsys):
    assert main(["--quiet", *arguments]) == 2
    error = capsys.readouterr().err
    assert reason in error and error.count("\n") == 1


def test_malformed_options_are_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["attention", "x.png", "--point", "1,2,3"])
    assert stopped.value.code == 2
    assert "expected two integers as Y,X" in capsys.readouterr().err


@pytest.mark.one_backend
def test_console_script_runs_on_the_backend_option_not_the_environments():
    # The installed entry point, in a fresh process whose environment names another backend:
    # importing keras_danet imports Keras on that one, so the command starts again on ours.
    executable = os.path.join(os.path.dirname(sys.executable), "keras-danet")
    backend = keras.backend.backend()
    other = "jax" if backend != "jax" else "torch"
    result = subprocess.run(
        [executable, "--backend", backend, "--version"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, KERAS_BACKEND=other),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith(f" on {backend}"), result.stdout


def test_another_backend_inside_a_running_process_is_a_clear_error(capsys):
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    assert main(["--backend", other, "presets"]) == 2
    assert f"Keras already runs on {keras.backend.backend()}" in capsys.readouterr().err
    assert main(["--backend", keras.backend.backend(), "--version"]) == 0
    assert capsys.readouterr().out.startswith("keras-danet ")


@pytest.mark.parametrize(
    "command",
    ["demo", "predict", "evaluate", "convert", "presets", "upload", "attention", "check-data"],
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: keras-danet {command}")


def test_flip_directions_are_checked_by_argparse(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "x.png", "--out", "x", "--tta", "--flip", "horizontal,diagonal"])
    assert stopped.value.code == 2
    assert "distinct directions out of ['horizontal', 'vertical']" in capsys.readouterr().err


def test_check_data_on_a_subset_of_a_named_datasets_classes(tmp_path, capsys):
    from tests.data.test_datasets import make_cityscapes

    make_cityscapes(str(tmp_path), count=2)
    arguments = ["--dataset", "cityscapes", "--data-root", str(tmp_path), "--split", "train"]
    assert main(["--quiet", "check-data", *arguments, "--classes", "car, road"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("class") :].splitlines()[1:]
    assert [line.split()[0] for line in table] == ["car", "road"]
    assert main(["--quiet", "check-data", *arguments, "--classes", "road,cars"]) == 2
    assert "did you mean ['car']" in capsys.readouterr().err
