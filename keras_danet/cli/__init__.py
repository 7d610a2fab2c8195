"""`keras-danet`: segment images, evaluate, convert checkpoints, look at attention, from a shell.

    keras-danet demo                                  # offline, under a minute on a CPU
    keras-danet predict street.png --preset danet_r50_cityscapes --out out/ --overlay
    keras-danet evaluate --preset danet_r101_cityscapes --dataset cityscapes \
        --data-root data/cityscapes
    keras-danet attention street.png --xy 600,300 --out attention.png
    keras-danet export --preset danet_r50_cityscapes --format onnx --out danet.onnx --labels
    keras-danet convert danet_r50-d8_512x1024_40k_cityscapes.pth my_preset/
    keras-danet presets
    keras-danet upload my_preset/ hf://my-name/danet-potholes
    keras-danet check-data --dataset ade20k --data-root data/ade/ADEChallengeData2016

`--backend` (or $KERAS_BACKEND) picks TensorFlow, JAX or PyTorch. Exit status: 0 on
success, 2 with a one-line reason on bad input, 1 if `check-data` finds problems.
"""

import importlib.util
import os
import subprocess
import sys

import keras

from keras_danet.cli.arguments import join_negative_pairs, parser
from keras_danet.cli.commands import COMMANDS
from keras_danet.data import DataError
from keras_danet.deployment import ExportError
from keras_danet.presets import PresetError
from keras_danet.version import __version__


def main(argv=None):
    as_command = argv is None  # the console script or `python -m keras_danet.cli`
    argv = sys.argv[1:] if argv is None else list(argv)
    grammar = parser()
    args = grammar.parse_args(join_negative_pairs(argv))
    if not (args.command or args.version):
        grammar.error("the following arguments are required: COMMAND")
    name = args.command or "--version"
    try:
        status = _use_backend(args.backend, argv, as_command)
        if status is not None:
            return status
        if args.version:
            return _print_version()
        return COMMANDS[args.command](args) or 0
    except Exception as error:
        if not _is_input_error(error):
            raise
        print(f"keras-danet {name}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-danet {name}: interrupted", file=sys.stderr)
        return 130


def _use_backend(backend, argv, as_command):
    """Runs the command on `backend`; an exit status if it ran in another process.

    Keras picks its backend once, when it is imported, and importing keras_danet (this
    module's package) imports Keras on $KERAS_BACKEND or Keras' default: the command starts
    again in a fresh interpreter told the backend."""
    if backend is None or keras.backend.backend() == backend:
        return None
    if not as_command:
        raise ValueError(
            f"--backend {backend}: Keras already runs on {keras.backend.backend()} in this "
            f"process; set KERAS_BACKEND={backend} before importing keras_danet."
        )
    if importlib.util.find_spec(backend) is None:
        raise ImportError(
            f"--backend {backend}: {backend} is not installed; "
            f"pip install 'keras-danet[{backend}]'."
        )
    environment = {**os.environ, "KERAS_BACKEND": backend}
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    # -P: the current folder is not put on sys.path, so a folder named keras_danet there
    # cannot stand in for the installed package.
    command = [sys.executable, "-P", "-m", "keras_danet.cli", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # Windows' exec starts a new process and exits: its status is lost
        return subprocess.run(command, env=environment, check=False).returncode
    os.execve(sys.executable, command, environment)


def _print_version():
    print(f"keras-danet {__version__}, Keras {keras.__version__} on {keras.backend.backend()}")
    return 0


def _is_input_error(error):
    """Bad input of any kind (a file, a preset, data, an option, a missing extra), or the
    machine refusing a write: a one-line reason and exit status 2, not a traceback."""
    return isinstance(
        error, (DataError, PresetError, ValueError, ImportError, ExportError, OSError)
    )
