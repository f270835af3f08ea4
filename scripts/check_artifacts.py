"""Python-side check of Go-written artifacts (graph/artifacts_test.go).

Usage: check_artifacts.py CKPT_PREFIX ARCH_JSON IMAGES_U8 N OUT_JSON

Reads the TF checkpoint with tf.train.load_checkpoint, rebuilds the model
with keras.models.model_from_json, loads the checkpoint's weights into it by
name (layer/kernel, layer/bias) and predicts on N uint8 NHWC images
(normalised /255 like the notebook). Writes OUT_JSON with every variable's
name, shape and sum, the parameter count, and writes OUT_JSON.f32 with the
predictions.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

prefix, arch, images, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
reader = tf.train.load_checkpoint(prefix)
shapes = reader.get_variable_to_shape_map()
variables = {}
for name in sorted(shapes):
    v = reader.get_tensor(name)
    if isinstance(v, bytes):  # train/run_state, the run's opaque DT_STRING state
        variables[name] = {"shape": [], "dtype": "string", "sum": 0.0, "first": 0.0}
        continue
    variables[name] = {"shape": list(v.shape), "dtype": str(v.dtype),
                       "sum": float(np.asarray(v, dtype=np.float64).sum()),
                       "first": float(np.asarray(v).reshape(-1)[0]) if v.size else 0.0}
model = keras.models.model_from_json(open(arch).read())
for layer in model.layers:
    ws = []
    for w in layer.weights:
        ws.append(reader.get_tensor(f"{layer.name}/{w.name}"))
    if ws:
        layer.set_weights(ws)
h, w, c = model.input_shape[1:]
x = np.fromfile(images, dtype=np.uint8)[: n * h * w * c].reshape(n, h, w, c).astype("float32") / 255
pred = model.predict(x, verbose=0)
pred.astype("<f4").tofile(out + ".f32")
json.dump({"variables": variables, "params": int(model.count_params()),
           "layers": [l.name for l in model.layers]}, open(out, "w"))
