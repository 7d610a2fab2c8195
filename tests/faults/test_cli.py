"""The CLI's promise for bad input: exit status 2 and one line naming the problem, checked
before any long work, and nothing of the user's overwritten. Run in-process: what is tested
is `main`'s handling, not the interpreter (tests/test_cli.py runs the installed script)."""

import contextlib
import os

import numpy as np
import pytest
from PIL import Image

from keras_danet import data
from keras_danet.cli import main
from tests.helpers import mounted_tmpfs


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    images, _ = data.synthetic_scenes(2, 32, 48, seed=3)
    Image.fromarray(images[0]).save(root / "a.png")
    Image.fromarray(images[1]).save(root / "a.jpg", quality=95)
    return root


def _fails(capsys, *arguments):
    """Runs the CLI; asserts exit 2 and a one-line message without a traceback; returns it."""
    try:
        code = main(["--quiet", *map(str, arguments)])
    except SystemExit as stopped:  # argparse
        code = stopped.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_no_command_and_unknown_options(capsys):
    assert "the following arguments are required: COMMAND" in _fails(capsys)
    assert "unrecognized arguments: --colour" in _fails(
        capsys, "predict", "a.png", "--out", "x", "--colour"
    )


def test_predict_out_is_a_file(photos, tmp_path, capsys):
    (tmp_path / "out").write_text("mine")
    assert "is a file; it must be a folder" in _fails(
        capsys, "predict", photos / "a.png", "--out", tmp_path / "out"
    )
    assert (tmp_path / "out").read_text() == "mine"


def test_predict_two_images_of_one_name_are_refused_before_any_work(photos, tmp_path, capsys):
    err = _fails(capsys, "predict", photos / "a.png", photos / "a.jpg", "--out", tmp_path / "o")
    assert "would both be written to" in err and "a.png" in err
    assert not (tmp_path / "o").exists()


def test_a_failed_predict_leaves_no_output_folder(photos, tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "new" / "folder"
    err = _fails(capsys, "predict", tmp_path / "broken.png", "--out", out)
    assert "broken.png" in err and not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    _fails(capsys, "predict", tmp_path / "broken.png", "--out", mine)
    assert mine.is_dir()  # a folder that was there stays


def test_predict_never_overwrites_an_input_image(photos, capsys):
    before = (photos / "a.png").read_bytes()
    assert "is one of the input images" in _fails(
        capsys, "predict", photos / "a.png", "--out", photos
    )
    assert (photos / "a.png").read_bytes() == before


def test_attention_never_overwrites_its_image_or_its_preset(photos, tmp_path, capsys):
    before = (photos / "a.png").read_bytes()
    arguments = ["attention", photos / "a.png", "--point", "5,5"]
    assert "is one of the inputs" in _fails(capsys, *arguments, "--out", photos / "a.png")
    assert (photos / "a.png").read_bytes() == before
    preset = tmp_path / "preset"
    preset.mkdir()
    (preset / "config.json").write_text("{}")
    err = _fails(capsys, *arguments, "--preset", preset, "--out", preset / "config.json")
    assert f"is a file of the input {preset}" in err
    assert (preset / "config.json").read_text() == "{}"


def test_evaluate_json_never_overwrites_a_file_of_the_dataset(tmp_path, capsys):
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"mask")
    common = ["evaluate", "--preset", "danet_demo_shapes", "--dataset", "folder"]
    common += ["--data-root", tmp_path, "--classes", "a,b"]
    err = _fails(capsys, *common, "--json", tmp_path / "masks" / "a.png")
    assert f"is a file of the input {tmp_path}" in err
    assert (tmp_path / "masks" / "a.png").read_bytes() == b"mask"


@pytest.mark.parametrize(
    "command, arguments, message",
    [
        ("attention", ["--point", "-5,10"], "--point: -5,10: both numbers must be 0 or more"),
        ("attention", ["--point", "5,-3"], "--point: 5,-3: both numbers must be 0 or more"),
        ("attention", ["--point=-5,10"], "--point: -5,10: both numbers must be 0 or more"),
        ("attention", ["--point", "5"], "--point: expected two integers as Y,X"),
        ("predict", ["--out", "x", "--crop", "-5,5"], "--crop: -5,5: both numbers must be 1"),
        ("predict", ["--out", "x", "--stride", "0,4"], "--stride: 0,4: both numbers must be 1"),
    ],
)
def test_negative_or_malformed_pairs_name_the_option_and_the_rule(
    photos, capsys, command, arguments, message
):
    assert f"argument {message}" in _fails(capsys, command, photos / "a.png", *arguments)


@pytest.mark.parametrize("count", ["-3", "0", "many"])
def test_demo_images_must_be_a_positive_count(capsys, count):
    assert "argument --images" in _fails(capsys, "demo", "--images", count)


def test_attention_out_is_a_folder(photos, tmp_path, capsys):
    assert "is a folder; give the path of a file" in _fails(
        capsys, "attention", photos / "a.png", "--point", "5,5", "--out", tmp_path
    )


def test_evaluate_json_that_cannot_be_written_is_refused_before_the_evaluation(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    common = ["evaluate", "--preset", "danet_demo_shapes", "--dataset", "folder"]
    common += ["--data-root", tmp_path, "--classes", "a,b"]
    assert "is a folder" in _fails(capsys, *common, "--json", tmp_path)
    assert "cannot write in" in _fails(capsys, *common, "--json", tmp_path / "file" / "r.json")


def test_convert_errors(tmp_path, capsys):
    assert "missing.pth" in _fails(capsys, "convert", tmp_path / "missing.pth", tmp_path / "o")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    checkpoint = os.path.join(os.path.dirname(__file__), "..", "fixtures", "danet_r50_tiny")
    err = _fails(capsys, "convert", os.path.join(checkpoint, "checkpoint.pth"), tmp_path / "mine")
    assert "holds thesis.tex" in err and "--overwrite" in err
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"]


def test_check_data_without_a_dataset(tmp_path, capsys):
    err = _fails(capsys, "check-data", "--dataset", "ade20k", "--data-root", tmp_path / "nowhere")
    assert "nowhere" in err


def test_predict_onto_a_full_disk_names_the_file(photos, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted_tmpfs(disk, "size=64k"):
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as file:
            file.write(b"\0" * (1 << 20))  # fills it up
        err = _fails(capsys, "predict", photos / "a.png", "--out", disk)
        assert "No space left on device" in err and str(disk / "a.png") in err
        assert ".partial" not in err
        assert sorted(os.listdir(disk)) == ["filler"]


def test_a_cache_that_is_a_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("KERAS_DANET_HOME", str(tmp_path / "cache"))
    err = _fails(capsys, "predict", "x.png", "--preset", "danet_r50_cityscapes", "--out", "o")
    assert "Could not load the preset" in err


def test_bundled_preset_works_with_an_unwritable_home(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", "/nonexistent/home")
    assert main(["--quiet", "predict", str(photos / "a.png"), "--out", str(tmp_path)]) == 0
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (32, 48)


def test_check_data_reports_a_missing_mask_as_a_problem_of_the_data(tmp_path, capsys):
    images, labels = data.synthetic_scenes(2, 24, 32, seed=1)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for index in range(2):
        Image.fromarray(images[index]).save(tmp_path / "images" / f"{index}.png")
    Image.fromarray(labels[0]).save(tmp_path / "masks" / "0.png")
    arguments = ["--quiet", "check-data", "--dataset", "folder", "--data-root", str(tmp_path)]
    arguments += ["--img-suffix", ".png", "--classes", "sky,road,grass,object"]
    assert main(arguments) == 1
    out = capsys.readouterr().out
    assert "problems:" in out and os.path.join("masks", "1.png") in out


def test_blank_class_names_on_the_command_line(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    err = _fails(
        capsys, "check-data", "--dataset", "folder", "--data-root", tmp_path, "--classes", ",,"
    )
    assert "class_names must be distinct and not blank" in err


def test_an_empty_folder_named_like_a_preset_is_named_as_the_problem(tmp_path, monkeypatch, capsys):
    (tmp_path / "danet_demo_shapes").mkdir()
    monkeypatch.chdir(tmp_path)
    err = _fails(capsys, "predict", "x.png", "--out", "o")
    assert "shadows the preset 'danet_demo_shapes'" in err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--int8"], "--int8 and --calibration FOLDER go together"),
        (["--calibration", "."], "--int8 and --calibration FOLDER go together"),
        (["--int8", "--calibration", "missing"], "calibration folder missing does not exist"),
        (["--int8", "--calibration", ".", "--format", "litert"], "not litert"),
    ],
)
def test_export_int8_needs_its_calibration_folder(tmp_path, capsys, arguments, message):
    out = tmp_path / "danet.onnx"
    with contextlib.chdir(tmp_path):
        err = _fails(capsys, "export", "--out", out, *arguments)
    assert message in err and not out.exists()
