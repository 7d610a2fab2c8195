"""The files and folders a command writes: refused before any work where they would
overwrite an input or each other, and removed again where a failed run made them."""

import contextlib
import os

from keras_danet.atomic_files import output_path


@contextlib.contextmanager
def created_folder(folder):
    """Makes `folder` and its missing parents; if the work then fails, removes those again
    while empty, so that a failed run leaves nothing behind (a folder that was there is
    never removed)."""
    folder = output_path(folder, "--out")
    created, parent = [], folder
    while parent and not os.path.isdir(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    os.makedirs(folder, exist_ok=True)
    try:
        yield
    except BaseException:
        for made in created:  # deepest first
            try:
                os.rmdir(made)
            except OSError:  # not empty: what was written stays, and its parents
                break
        raise


def predict_outputs(images, out, overlay):
    """`{image: (class map path, overlay path)}`, refused before any work where two images
    would write one file, or a class map would overwrite one of the images."""
    out = output_path(out, "--out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; it must be a folder (it is created if missing).")
    outputs, writers = {}, {}
    inputs = {os.path.realpath(image) for image in images}
    for image in images:
        stem = os.path.splitext(os.path.basename(image))[0]
        paths = (os.path.join(out, f"{stem}.png"), os.path.join(out, f"{stem}_overlay.png"))
        for path in paths[: 2 if overlay else 1]:
            if path in writers and writers[path] != image:
                raise ValueError(
                    f"{writers[path]} and {image} would both be written to {path}; "
                    "segment them into different --out folders, or rename one."
                )
            if os.path.realpath(path) in inputs:
                raise ValueError(f"{path} is one of the input images; choose another --out.")
            writers[path] = image
        outputs[image] = paths
    return outputs


def check_output_file(path, option, inputs=()):
    """Refuses, before any work, an output file that cannot be written, or that is one of
    `inputs` (files, or folders whose existing files are all inputs: a preset, a dataset)."""
    path = output_path(path, option)
    if os.path.isdir(path):
        raise ValueError(f"{option} {path} is a folder; give the path of a file.")
    real = os.path.realpath(path)
    for source in inputs:
        source_real = os.path.realpath(source or "")
        if not source or not os.path.exists(source_real):  # a preset name, an unset option
            continue
        inside = os.path.isdir(source_real) and real.startswith(source_real + os.sep)
        if real == source_real or (inside and os.path.exists(real)):
            what = f"a file of the input {source}" if inside else "one of the inputs"
            raise ValueError(f"{option} {path} is {what}; choose another {option}.")
    folder = os.path.dirname(path)
    while not os.path.exists(folder):  # the nearest existing folder is where it is created
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write in {folder}.")
    return path
