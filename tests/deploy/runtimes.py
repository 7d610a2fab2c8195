"""Running an exported artifact in its own runtime, as a deployment would, without Keras."""


def runner(format, path):
    """A function from NumPy images to the artifact's outputs, a dict by output name (a
    single unnamed output is "logits")."""
    return {
        "tf_saved_model": _saved_model,
        "onnx": _onnx,
        "litert": _litert,
        "openvino": _openvino,
    }[format](path)


def _named(outputs):
    if isinstance(outputs, dict) and len(outputs) > 1:
        return outputs
    return {"logits": next(iter(outputs.values())) if isinstance(outputs, dict) else outputs}


def _saved_model(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)  # kept: the function refers to its variables

    def run(images):
        outputs = loaded.serve(images)
        if isinstance(outputs, dict):
            return _named({name: value.numpy() for name, value in outputs.items()})
        return _named(outputs.numpy())

    return run


def _onnx(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    [images_input] = session.get_inputs()
    names = [output.name for output in session.get_outputs()]
    return lambda images: _named(
        dict(zip(names, session.run(None, {images_input.name: images}), strict=True))
    )


def _litert(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)  # no Flex delegate: builtin ops only
    run_signature = interpreter.get_signature_runner()
    [input_name] = run_signature.get_input_details()

    def run(images):
        return _named(dict(run_signature(**{input_name: images})))

    return run


def _openvino(path):
    import openvino

    # OpenVINO runs in bf16 on CPUs with AVX512-BF16 unless asked for f32.
    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    # keras_danet.export names its outputs; Keras' own model.export of a DANet lists the
    # logits first, then shape values of its graph as extra outputs (OpenVINO 2026.4).
    ports = [port for port in compiled.outputs if _name(port) in ("logits", "labels")]
    ports = ports or compiled.outputs[:1]

    def run(images):
        results = compiled(images)
        return _named({_name(port): results[port] for port in ports})

    return run


def _name(port):
    # An OpenVINO output has several names (the TensorFlow tensor's, the signature's).
    names = port.get_names()
    return next((name for name in ("logits", "labels") if name in names), port.get_any_name())
