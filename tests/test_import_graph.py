"""The package's imports, read from the code: layered, with no loop.

Presets sit below models, as keras-hub's `preset_utils` sits below its models: the model
classes import `keras_danet.presets` and register themselves and their converters there
(`presets/registry.py`), and nothing in `presets/` imports a model or a converter, not even
inside a function. `layers/` knows nothing of presets or conversion.
"""

import ast
import os

import keras_danet

PACKAGE = os.path.dirname(os.path.abspath(keras_danet.__file__))


def _module_name(path):
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))[: -len(".py")]
    parts = relative.split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found[_module_name(path)] = path
    return found


def _top_level_imports(path, modules, inside_functions=False):
    """The keras_danet modules that `path` imports when it loads (with `inside_functions`,
    also those its functions import when called)."""
    with open(path) as file:
        tree = ast.parse(file.read(), path)
    targets = set()
    if inside_functions:
        tree.body = [
            node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
        ]

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("keras_danet"))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_danet"):
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    # `from keras_danet import config` imports the module keras_danet.config.
                    targets.add(submodule if submodule in modules else node.module)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):  # still module level
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(tree.body)
    return targets


def _graph(inside_functions=False):
    modules = _modules()
    return {
        name: _top_level_imports(path, modules, inside_functions) for name, path in modules.items()
    }


# What presets may use: themselves and the package's leaves.
_BELOW_PRESETS = (
    "keras_danet.presets",
    "keras_danet.atomic_files",
    "keras_danet.dataset_info",
    "keras_danet.distributed",
    "keras_danet.file_lock",
    "keras_danet.version",
)


def test_presets_import_no_model_and_no_converter_even_inside_functions():
    graph = _graph(inside_functions=True)
    assert len(graph) > 40  # the walk found the package
    offending = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("keras_danet.presets")
        for target in targets
        if not target.startswith(_BELOW_PRESETS)
    }
    assert offending == set()


def test_layers_import_no_presets_and_no_converter():
    graph = _graph(inside_functions=True)
    offending = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("keras_danet.layers")
        for target in targets
        if target.startswith(("keras_danet.presets", "keras_danet.convert", "keras_danet.models"))
        or target == "keras_danet"
    }
    assert offending == set()


def test_module_imports_have_no_loop():
    graph = _graph()
    # The root package re-exports everything; a module importing it would be a loop.
    assert not [
        m for m, targets in graph.items() if "keras_danet" in targets and m != "keras_danet"
    ]
    state, loops = {}, []

    def depth_first(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if state.get(target) == "open":
                loops.append(path[path.index(target) :] + [target])
            elif target not in state:
                depth_first(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            depth_first(module, [module])
    assert loops == []


def test_the_graph_sees_an_edge_that_exists():
    # The reader is not vacuous: it finds what models/danet.py imports at the top.
    graph = _graph()
    assert "keras_danet.models.resnet_v1c" in graph["keras_danet.models.danet"]
    assert "keras_danet.models.danet" in graph["keras_danet.convert.mmseg"]
    assert "keras_danet.presets.loading" in graph["keras_danet.models.danet"]
    assert "keras_danet.training.recipe" in graph["keras_danet.models.danet"]
    inside = _graph(inside_functions=True)  # imports inside functions, seen when asked for
    assert "keras_danet.presets.loading" in inside["keras_danet.presets.upload"]
    assert "keras_danet.config" in graph["keras_danet.layers.position_attention"]


def test_private_keras_is_imported_in_one_place():
    # training/keras_internals.py says why each private piece of Keras is needed; a Keras
    # upgrade that moves one breaks there and nowhere else.
    importers = set()
    for module, path in _modules().items():
        with open(path) as file:
            tree = ast.parse(file.read(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name == "keras.src" or name.startswith("keras.src.") for name in names):
                importers.add(module)
    assert importers == {"keras_danet.training.keras_internals"}


# The only packages imported inside functions, and why. Everything else, the package's own
# modules included, is imported at the top of the module that uses it: no import is
# deferred to dodge a loop (there is none, see above).
IMPORTED_INSIDE_FUNCTIONS = {
    # Optional dependencies (extras): a module works without them until the function that
    # needs one runs, and then says which extra to install.
    "tensorflow": "the tensorflow extra: tf.data input, the graph an export traces",
    "torch": (
        "the torch extra: reading .pth checkpoints; PyTorch's own conv2d on its backend; "
        "torchrun's process group"
    ),
    "jax": "the jax extra: its process count and barrier across hosts, on its backend",
    "cv2": "the data extra: OpenCV decodes and resizes images as mmcv does",
    "PIL": "the image extra: reading and writing PNG and JPEG files",
    "matplotlib": "the plot extra: attention pictures",
    "openvino": "the deploy extra: OpenVINO's int8 quantisation",
    "onnxruntime": "the deploy extra: ONNX Runtime's int8 quantisation",
    # Core dependencies that read their settings from the environment when imported
    # (HF_HUB_OFFLINE, HF_ENDPOINT, HF_HOME; TQDM_DISABLE...): imported at first use, so that
    # settings made after `import keras_danet` count.
    "huggingface_hub": "reads its environment settings when imported",
    "tqdm": "reads its TQDM_* environment settings when imported",
}


def test_imports_inside_functions_are_the_listed_optional_ones():
    found = {}
    for module, path in _modules().items():
        with open(path) as file:
            tree = ast.parse(file.read(), path)
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or "."]  # a relative import would show as "."
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(module)
    assert {"cv2", "tensorflow", "torch"} <= set(found)  # the reader sees them
    unlisted = {
        name: modules for name, modules in found.items() if name not in IMPORTED_INSIDE_FUNCTIONS
    }
    assert unlisted == {}
