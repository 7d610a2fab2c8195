"""Global switches of keras_danet, read when a layer runs.

`KERAS_DANET_ATTENTION` in the environment sets the position-attention implementation for
the whole process; `set_attention_implementation` changes it from Python.
"""

import contextlib
import os

ATTENTION_IMPLEMENTATIONS = ("naive", "chunked", "fused")
_ATTENTION_VARIABLE = "KERAS_DANET_ATTENTION"
_attention = None
_exporting = 0


def set_attention_implementation(name):
    """Sets how `PositionAttention(implementation="auto")` layers compute attention.

    - "chunked" (what "auto" means unless set): queries in blocks of
      `query_chunk_size`, so memory grows linearly with the number of positions N instead
      of as N^2; as fast as "naive" or faster on every backend we measured;
    - "naive": the whole N x N attention matrix at once, mmseg's formulation;
    - "fused": `keras.ops.dot_product_attention`, the value split into heads as wide as the
      key (PyTorch's scaled-dot-product kernels, JAX's cuDNN flash attention on a GPU).

    `None` returns to the environment variable, or "chunked".

    Example:
    >>> keras_danet.config.set_attention_implementation("naive")
    """
    global _attention
    if name is not None and name not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {ATTENTION_IMPLEMENTATIONS}, not {name!r}."
        )
    _attention = name


def attention_implementation():
    """The implementation "auto" stands for now (see `set_attention_implementation`)."""
    if _attention is not None:
        return _attention
    name = os.environ.get(_ATTENTION_VARIABLE, "chunked")
    if name not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"${_ATTENTION_VARIABLE}={name!r}; it must be one of {ATTENTION_IMPLEMENTATIONS}."
        )
    return name


@contextlib.contextmanager
def tracing_for_export():
    """While a model is traced for export (`DANet.export` enters it): "chunked" position
    attention computes the whole matrix at once, as "naive".

    The chunked path loops over query blocks with `ops.map`, a TensorList loop in a
    TensorFlow graph that LiteRT (without its Flex delegate) and OpenVINO cannot convert,
    and on unknown sizes it cannot know how many blocks there are ahead of time.
    """
    global _exporting
    _exporting += 1
    try:
        yield
    finally:
        _exporting -= 1


def is_tracing_for_export():
    return _exporting > 0
