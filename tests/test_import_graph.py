"""The package's module-level imports, read from the code: layered, with no loop.

`models/` and `layers/` know nothing of presets or conversion (the presets package builds
models, and the converter fills them), so each can change alone. Imports inside functions
are deliberate, lazy ways around this rule (`models/presets_door.py` says why) and are not
module-level edges.
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


def _top_level_imports(path, modules):
    """The keras_danet modules that `path` imports when it loads (not inside functions)."""
    with open(path) as file:
        tree = ast.parse(file.read(), path)
    targets = set()

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


def _graph():
    modules = _modules()
    return {name: _top_level_imports(path, modules) for name, path in modules.items()}


def test_models_and_layers_import_no_presets_and_no_converter():
    graph = _graph()
    assert len(graph) > 40  # the walk found the package
    offending = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith(("keras_danet.models", "keras_danet.layers"))
        for target in targets
        if target.startswith(("keras_danet.presets", "keras_danet.convert"))
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
    assert "keras_danet.config" in graph["keras_danet.layers.position_attention"]
