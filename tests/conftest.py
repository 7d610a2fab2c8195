"""Test set-up shared by the whole suite.

Keras writes ~/.keras/keras.json on import and the hub libraries cache under ~/.cache, so
every cache variable points into one temporary folder before anything imports Keras.
"""

import os
import shutil
import tempfile

_CACHE_ROOT = tempfile.mkdtemp(prefix="keras_danet_tests_")
for _variable in (
    "KERAS_HOME",
    "HF_HOME",
    "XDG_CACHE_HOME",
    "TORCHINDUCTOR_CACHE_DIR",
    "KERAS_DANET_HOME",
):
    os.environ[_variable] = os.path.join(_CACHE_ROOT, _variable.lower())
os.environ.setdefault("KERAS_BACKEND", "jax")
# Many tests (and their child processes) build the same tiny model: XLA's persistent cache
# compiles each of its steps once.
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(_CACHE_ROOT, "jax")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
# Most of a JAX test's time is XLA compiling a tiny model's step (16 s) for a few milliseconds
# of running it: LLVM's optimisation level 0 compiles about a third faster, and fast-math
# stays off, so results stay within every test's tolerance. The slow tests, which run thousands of
# steps, keep the default (KERAS_DANET_TEST_FAST_COMPILE=0, tools/run_suite.sh).
if os.environ.get("KERAS_DANET_TEST_FAST_COMPILE", "1") != "0":
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in _flags:
        os.environ["XLA_FLAGS"] = f"{_flags} --xla_backend_optimization_level=0".strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
MMSEG_FIXTURES = ("danet_r50_tiny", "danet_r101_tiny_odd", "danet_r50_tiny_align_corners")
# The tiny widths of tools/make_fixtures.sh, for models built without a checkpoint, with one
# bottleneck per stage (depth 14): tracing and compiling take about half as long as at depth
# 50, and the mmseg fixtures test depths 50 and 101.
TINY = dict(
    depth=14, stem_channels=8, base_channels=4, head_channels=16, pam_channels=4, aux_channels=8
)


# End-to-end tests of what the documentation, the examples and the installed scripts do
# (each a fresh interpreter, tens of seconds) are marked `one_backend`: the behaviour under
# test is not a backend's, and every function they call is tested in-process on all three
# backends. They run on this backend's pass only (PyTorch: the quickest to start).
ONE_BACKEND = os.environ.get("KERAS_DANET_ONE_BACKEND", "torch")


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == ONE_BACKEND:
        return
    elsewhere = [item for item in items if item.get_closest_marker("one_backend")]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if not item.get_closest_marker("one_backend")]


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


def pytest_report_header(config):
    return (
        f"keras {keras.__version__}, backend {keras.backend.backend()}; one_backend tests "
        f"run on {ONE_BACKEND}"
    )


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")  # a test that changed it must not leak


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def fixture_path(name, file="checkpoint.pth"):
    return os.path.join(FIXTURES, name, file)
