"""Keras 3 side of the Go/Keras parity test (graph/parity_test.go).

Usage: keras_parity.py DIR

DIR/spec.json: {"layers": [config layers], "input_shape": [h, w, c],
                "classes": 10, "optimizer": {name, learning_rate, ...},
                "batches": K, "batch_size": N}
DIR/w_<i>.f32: initial trainable weights (model.trainable_weights order), raw
               little-endian float32.
DIR/x_<k>.u8, DIR/y_<k>.u8: batch k, uint8 NHWC images and labels.

Builds the same Sequential model in Keras, loads the weights, and writes:
DIR/out/logits.f32 (input of the final softmax on batch 0, training=True),
DIR/out/loss.json ({"loss0": loss on batch 0, "step_losses": [...]})
DIR/out/g_<i>.f32 (gradients on batch 0), DIR/out/after_<i>.f32 (weights
after one train_on_batch per batch, the fit() code path).
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def build(spec):
    layers = [keras.Input(shape=tuple(spec["input_shape"]))]
    for l in spec["layers"]:
        t = l["type"]
        if t == "conv2d":
            ks = l["kernel_size"]
            st = l.get("strides") or [1]
            layers.append(keras.layers.Conv2D(
                l["filters"], tuple(ks * 2 if len(ks) == 1 else ks),
                strides=tuple(st * 2 if len(st) == 1 else st),
                padding=l.get("padding") or "valid", activation=l.get("activation") or None))
        elif t == "dense":
            layers.append(keras.layers.Dense(l["units"], activation=l.get("activation") or None))
        elif t == "activation":
            layers.append(keras.layers.Activation(l["activation"]))
        elif t == "max_pooling2d":
            ps = l.get("pool_size") or [2]
            layers.append(keras.layers.MaxPooling2D(tuple(ps * 2 if len(ps) == 1 else ps)))
        elif t == "dropout":
            layers.append(keras.layers.Dropout(l.get("rate", 0.0)))
        elif t == "flatten":
            layers.append(keras.layers.Flatten())
        else:
            raise SystemExit(f"unknown layer {t}")
    return keras.Sequential(layers)


def optimizer(o):
    name = o["name"]
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=o["learning_rate"], rho=o["rho"],
                                        momentum=o["momentum"], epsilon=o["epsilon"],
                                        centered=o["centered"])
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=o["learning_rate"], beta_1=o["beta_1"],
                                     beta_2=o["beta_2"], epsilon=o["epsilon"])
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=o["learning_rate"], momentum=o["momentum"],
                                    nesterov=o["nesterov"])
    raise SystemExit(f"unknown optimizer {name}")


def main(d):
    spec = json.load(open(os.path.join(d, "spec.json")))
    model = build(spec)
    for i, w in enumerate(model.trainable_weights):
        a = np.fromfile(os.path.join(d, f"w_{i}.f32"), dtype="<f4").reshape(w.shape)
        w.assign(a)
    h, wd, c = spec["input_shape"]

    def batch(k):
        x = np.fromfile(os.path.join(d, f"x_{k}.u8"), dtype=np.uint8).reshape(-1, h, wd, c)
        y = np.fromfile(os.path.join(d, f"y_{k}.u8"), dtype=np.uint8)
        # The notebook's preprocessing: float32 / 255 and one-hot targets.
        return x.astype("float32") / 255, keras.utils.to_categorical(y, spec["classes"])

    out = os.path.join(d, "out")
    os.makedirs(out, exist_ok=True)
    x0, y0 = batch(0)
    # Logits: the input of the final softmax, as Keras's loss recovers them.
    pre_softmax = keras.Model(model.inputs, model.layers[-1].input)
    pre_softmax(x0, training=True).numpy().astype("<f4").tofile(os.path.join(out, "logits.f32"))
    loss_fn = keras.losses.CategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss0 = loss_fn(y0, model(x0, training=True))
    grads = tape.gradient(loss0, model.trainable_weights)
    for i, g in enumerate(grads):
        g.numpy().astype("<f4").tofile(os.path.join(out, f"g_{i}.f32"))

    model.compile(optimizer=optimizer(spec["optimizer"]), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    losses = []
    for k in range(spec["batches"]):
        xk, yk = batch(k)
        r = model.train_on_batch(xk, yk, return_dict=True)
        losses.append(float(r["loss"]))
    for i, w in enumerate(model.trainable_weights):
        w.numpy().astype("<f4").tofile(os.path.join(out, f"after_{i}.f32"))
    json.dump({"loss0": float(loss0), "step_losses": losses}, open(os.path.join(out, "loss.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
