"""The `>>>` examples in keras_danet's docstrings run as written, on one backend.

Each docstring's examples run in order, with the module's own names and those of one
namespace, in a folder that holds what they name: `keras_danet`, `keras`, `np`, a `model`
(a Cityscapes DANet of tiny widths, converted from the mmseg fixture and compiled),
`images`, `image`, `label`, `palette`, `street.png` and other pictures, `train` (Cityscapes
batches at small crops), a Cityscapes-layout `data/cityscapes`, a three-class `shapes/`
folder, and the mmseg checkpoints the converter examples name (the tiny fixtures under
those names). The names are fresh for each docstring; the objects are shared, in sorted
order, as in a notebook (an example that compiles or trains `model` changes it for later
ones), so an example shows no output that depends on the weights.
Where an example shows output, doctest compares it; where it shows none, it must run
without an error. The examples that cannot run here are listed in `NOT_RUN`, each with why.

`fit` runs one epoch where an example names more (`epochs=10` runs as `epochs=1`): the
count is the length of a user's training, and one epoch runs every line the example shows
(ten epochs of mmseg's 512x1024 crops cost CI minutes and test nothing more).
"""

import copy
import doctest
import importlib
import os
import pkgutil
import re
import shutil

import keras
import numpy as np
import pytest

import keras_danet
from keras_danet.data.synthetic import save_synthetic_scenes, synthetic_scenes
from keras_danet.dataset_info import CITYSCAPES
from tests.conftest import fixture_path
from tests.data.test_datasets import make_cityscapes

pytestmark = pytest.mark.one_backend

# What needs the network or a real dataset, by docstring (module.qualified_name).
_DOWNLOAD = (
    "downloads a released checkpoint from download.openmmlab.com; tests/presets runs the same "
    "code on the tiny mmseg fixture served from a file:// mirror"
)
NOT_RUN = {
    "keras_danet.models.danet.DANet": _DOWNLOAD + ' (its backbone="resnet50_v1c" line)',
    "keras_danet.models.danet.DANet.from_preset": _DOWNLOAD,
    "keras_danet.models.danet.DANet.reset_classifier": _DOWNLOAD,
    "keras_danet.models.preset_metadata.PresetMetadata.preset": _DOWNLOAD,
    "keras_danet.models.resnet_v1c.ResNetV1c": _DOWNLOAD + " (resnet101_v1c)",
    "keras_danet.models.resnet_v1c.ResNetV1c.from_preset": _DOWNLOAD + " (resnet50_v1c)",
    "keras_danet.presets.upload.upload_preset": (
        "uploads to huggingface.co; tests/presets/test_upload.py runs it against the loopback "
        "Hub stand-in"
    ),
}


def _docstrings():
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for module_info in pkgutil.walk_packages(keras_danet.__path__, "keras_danet."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for test in finder.find(module, module.__name__):
            if test.examples and test.name.startswith(module.__name__):
                found.setdefault(test.name, test)
    return found


DOCSTRINGS = _docstrings()


_EPOCHS = re.compile(r"\bepochs=\d+")
_SHAPE = re.compile(r"(?:torch\.Size|TensorShape)\(\[([^\]]*)\]\)")


class _Checker(doctest.OutputChecker):
    """doctest's comparison where an example shows output; none shown, any output is fine
    (an assignment's value, a model summary)."""

    def check_output(self, want, got, optionflags):
        # Shapes print as the docstrings show them (JAX's tuples) on every backend.
        got = _SHAPE.sub(lambda match: f"({match.group(1)})", got)
        return not want or super().check_output(want, got, optionflags)


def _save_shapes(folder):
    """A three-class folder dataset (background, circle, square), as `data.folder`'s
    example reads."""
    images, labels = synthetic_scenes(4, height=48, width=64, seed=2)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        keras_danet.visualize.save_png(f"{folder}/images/{index}.png", image)
        keras_danet.visualize.save_png(f"{folder}/masks/{index}.png", np.minimum(label, 2))


@pytest.fixture(scope="module")
def namespace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docstrings")
    previous = os.getcwd()
    os.chdir(folder)
    try:
        save_synthetic_scenes("scenes", 4, height=48, width=64)
        # Large enough for the attention examples' xy=(140, 150).
        pictures, _ = synthetic_scenes(2, height=160, width=200, seed=0)
        for name in ("street.png", "a.jpg", "b.jpg"):
            keras_danet.visualize.save_png(name, pictures[0])
        for name in ("photos/one.png", "val/one.png", "val/two.png"):
            keras_danet.visualize.save_png(name, pictures[1])
        for split in ("train", "val"):
            make_cityscapes(os.path.join("data", "cityscapes"), count=2, split=split)
        checkpoint = "danet_r50-d8_512x1024_40k_cityscapes_20200605_191324-c0dbfa5f.pth"
        shutil.copy(fixture_path("danet_r50_tiny"), checkpoint)
        shutil.copy(
            fixture_path("resnet50_v1c_tiny", "resnet50_v1c_tiny.pth"), "resnet50_v1c-2cccc1ad.pth"
        )
        # A Cityscapes DANet of the tiny widths, as the examples' `model`, and Cityscapes
        # batches at small crops as their `train`.
        model = keras_danet.convert_mmseg_checkpoint(checkpoint)
        model.compile()  # as from_preset gives it
        model.preset_metadata.update(
            dataset=CITYSCAPES.name,
            class_names=list(CITYSCAPES.class_names),
            palette=[list(color) for color in CITYSCAPES.palette],
        )
        _save_shapes("shapes")
        _, labels = synthetic_scenes(1, height=48, width=64, seed=1)
        train = keras_danet.data.cityscapes(
            "data/cityscapes", "train", batch_size=1, crop_size=(24, 32), scale=(64, 40)
        )
        yield {
            "keras_danet": keras_danet,
            "keras": keras,
            "np": np,
            "model": model,
            "images": pictures[:, :48, :64].astype("float32"),
            "image": pictures[0],
            "label": labels[0],
            "prediction": labels[0],
            "backbone": model.backbone,
            "palette": CITYSCAPES.palette,
            "class_names": CITYSCAPES.class_names,
            "visualize": keras_danet.visualize,
            "train": train,
            "train_data": train,
            "val_data": train,
        }
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("name", sorted(set(DOCSTRINGS) - set(NOT_RUN)))
def test_docstring_examples_run(name, namespace):
    test = copy.copy(DOCSTRINGS[name])
    test.examples = [copy.copy(example) for example in test.examples]
    for example in test.examples:
        example.source = _EPOCHS.sub("epochs=1", example.source)
    # The module's own names, as doctest gives them, and the namespace's.
    test.globs = {**DOCSTRINGS[name].globs, **namespace}
    runner = doctest.DocTestRunner(checker=_Checker(), optionflags=doctest.ELLIPSIS)
    report = []
    try:
        runner.run(test, out=report.append, clear_globs=False)
    finally:
        # keras_danet.config's example sets the attention switch for the whole process.
        keras_danet.config.set_attention_implementation(None)
    assert runner.failures == 0, "".join(report)


def test_every_listed_docstring_exists():
    assert set(NOT_RUN) <= set(DOCSTRINGS)
