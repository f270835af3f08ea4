"""Keras 3 side of the Go/Keras parity test (internal/kerasparity).

Usage: keras_parity.py DIR

DIR/model.json: the architecture as Go writes it (cifar10_architecture.json,
                Keras 3 to_json schema): Keras rebuilds it with model_from_json,
                so this script has no layer table of its own.
DIR/spec.json:  {"classes": 10, "batches": K, "optimizer": {"class": "RMSprop",
                 "config": {...}}, "layers": [{"name", "class", "user_keys"}]}
DIR/w/<layer>/<weight>.f32: every initial variable (trainable and not), raw
                little-endian float32, named <layer name>/<weight name>.
DIR/x_<k>.u8, DIR/y_<k>.u8: batch k, uint8 NHWC images and labels.

With "fused_batchnorm": true in spec.json, BatchNormalization trains on
TensorFlow's fused kernel, as Go's does (see use_fused_batchnorm). With
"precision": "mixed_bfloat16" the global dtype policy is set before any layer
is built (keras.config.set_dtype_policy), as model.json's layers carry it too.

Checks first that every layer's config in model.json equals the config of a
Keras layer built from only the arguments the Go config set (so Go's
defaults are Keras's defaults), then writes:
DIR/out/logits.f32   logits on batch 0 (training=True): the input of the
                     final softmax,
DIR/out/probs.f32    model output on batch 0 in inference mode (initial weights),
DIR/out/loss.json    {"loss0": loss on batch 0, "step_losses": [...], "loss_scale": [[dynamic_scale,
                     step_counter, iterations] after each step] with "loss_scale" in spec.json
                     ({"initial_scale", "dynamic_growth_steps"}: the optimizer wrapped in a
                     LossScaleOptimizer)},
DIR/out/g/<layer>/<weight>.f32     gradients on batch 0 (trainable weights),
DIR/out/after/<layer>/<weight>.f32 every variable after one train_on_batch per
                     batch (the fit() code path; moving statistics included),
DIR/out/ema/<layer>/<weight>.f32 the optimizer's moving averages (use_ema),
DIR/out/probs_after.f32 model output on batch 0 in inference mode after training.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def variables(model):
    """(key, variable) for every variable, keyed <layer name>/<weight name>."""
    for layer in model.layers:
        for w in layer.weights:
            yield f"{layer.name}/{w.name}", w


def build(d, arch):
    model = keras.models.model_from_json(arch)
    for key, w in variables(model):
        a = np.fromfile(os.path.join(d, "w", key + ".f32"), dtype="<f4")
        w.assign(a.reshape(w.shape))
    return model


def use_fused_batchnorm():
    """Train BatchNormalization with TensorFlow's fused kernel, as Go does.

    Keras builds the layer from tf.nn.moments and tf.nn.batch_normalization;
    the fused kernel is the same function (the parity cases that do not set
    fused_batchnorm hold Go's fused layer to Keras's own), but its float32
    rounding differs by ~1e-7, and in a deep ReLU net that is enough to
    switch a unit whose input lies within rounding of zero, which moves a
    BatchNormalization's beta gradient (a sum over the batch) by ~1e-3.
    With the same kernel on both sides, the whole-net comparison is held to
    the same tolerance as the notebook nets. The rest of the layer is
    Keras's: the moving statistics move by the biased batch variance
    (the fused kernel reports it with Bessel's correction, undone here as
    in Go) with Keras's momentum arithmetic.
    """
    from keras.src.layers.normalization.batch_normalization import BatchNormalization
    keras_call = BatchNormalization.call

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or len(inputs.shape) != 4:
            return keras_call(self, inputs, training=training, mask=mask)
        # Under a mixed policy Keras normalises in float32 and casts the
        # result back to the compute dtype (batch_normalization.py, call).
        out_dtype = inputs.dtype
        inputs = tf.cast(inputs, "float32")
        ch = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([ch], inputs.dtype)
        beta = self.beta if self.center else tf.zeros([ch], inputs.dtype)
        y, mean, var = tf.compat.v1.nn.fused_batch_norm(inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), inputs.dtype)
        var = var * ((n - 1) / n)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + var * (1.0 - self.momentum))
        return tf.cast(y, out_dtype)

    BatchNormalization.call = call


def check_defaults(model, spec):
    """Go's full layer configs must equal Keras's for the same user arguments."""
    by_name = {l.name: l for l in model.layers}
    for entry in spec["layers"]:
        got = by_name[entry["name"]].get_config()
        cls = getattr(keras.layers, entry["class"])
        kwargs = {k: got[k] for k in entry["user_keys"]}
        try:
            fresh = cls(**kwargs)
        except TypeError:  # a required argument Go defaults (AveragePooling2D's pool_size)
            required = [p for p in ("pool_size", "filters", "kernel_size", "units", "rate") if p in got]
            fresh = cls(**{**{k: got[k] for k in required}, **kwargs})
        want = fresh.get_config()
        for key in sorted(set(want) | set(got)):
            if key == "name":
                continue
            # Compared as JSON values: Go writes a float 0.0 as 0, which Keras
            # reads back as the int 0 (equal as numbers, not as text).
            same = json.loads(json.dumps(want.get(key), default=str)) == json.loads(json.dumps(got.get(key), default=str))
            if not same:
                sys.exit(f"layer {entry['name']} ({entry['class']}): {key} is {got.get(key)!r} in Go's config, "
                         f"{want.get(key)!r} in Keras's for the same arguments")


def dump(path, a):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.asarray(a).astype("<f4").tofile(path)


def main(d):
    spec = json.load(open(os.path.join(d, "spec.json")))
    # The layers in model.json carry their dtype policy; the global one
    # makes the fresh layers of check_defaults agree with it.
    keras.config.set_dtype_policy(spec.get("precision", "float32"))
    arch = open(os.path.join(d, "model.json")).read()
    out = os.path.join(d, "out")
    model = build(d, arch)
    check_defaults(model, spec)
    if spec.get("fused_batchnorm"):
        use_fused_batchnorm()
    h, wd, c = model.input_shape[1:]

    def batch(k):
        x = np.fromfile(os.path.join(d, f"x_{k}.u8"), dtype=np.uint8).reshape(-1, h, wd, c)
        y = np.fromfile(os.path.join(d, f"y_{k}.u8"), dtype=np.uint8)
        # The notebook's preprocessing: float32 / 255 and one-hot targets;
        # then, when the config sets data.mean/std, per-channel standardising.
        x = x.astype("float32") / 255
        if spec.get("mean"):
            x = (x - np.asarray(spec["mean"], "float32")) / np.asarray(spec["std"], "float32")
        return x, keras.utils.to_categorical(y, spec["classes"])

    os.makedirs(out, exist_ok=True)
    x0, y0 = batch(0)
    # Logits: the same model with its final activation linear, on separate
    # copies, so that probing in training mode leaves the model's
    # BatchNormalization statistics untouched.
    cfg = json.loads(arch)
    cfg["config"]["layers"][-1]["config"]["activation"] = "linear"
    logit_model = build(d, json.dumps(cfg))
    dump(os.path.join(out, "logits.f32"), logit_model(x0, training=True))
    dump(os.path.join(out, "probs.f32"), model(x0, training=False))
    probe = build(d, arch)
    loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=spec.get("label_smoothing", 0.0))
    with tf.GradientTape() as tape:
        loss0 = loss_fn(y0, probe(x0, training=True))
        if probe.losses:  # weight regularizers, as compute_loss adds them
            loss0 = loss0 + tf.add_n(probe.losses)
    trainable = [(k, w) for k, w in variables(probe) if w.trainable]
    grads = tape.gradient(loss0, [w for _, w in trainable])
    for (k, _), g in zip(trainable, grads):
        dump(os.path.join(out, "g", k + ".f32"), g)

    o = spec["optimizer"]
    cls = getattr(keras.optimizers, o["class"])
    if o.get("lr_multipliers"):
        # Go's learning_rate_multipliers (not a Keras argument).
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from keras_multipliers import with_lr_multipliers
        cls = with_lr_multipliers(cls, o["lr_multipliers"])
    # from_config: a learning_rate schedule comes as its serialized dict
    # (keras/src/optimizers/base_optimizer.py, Optimizer.from_config).
    optimizer = cls.from_config(o["config"])
    if spec.get("loss_scale"):
        # Go's LossScale: keras/src/optimizers/loss_scale_optimizer.py.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, **spec["loss_scale"])
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=spec.get("label_smoothing", 0.0)),
                  metrics=["accuracy"])
    losses, scales = [], []
    for k in range(spec["batches"]):
        xk, yk = batch(k)
        r = model.train_on_batch(xk, yk, return_dict=True)
        losses.append(float(r["loss"]))
        if spec.get("loss_scale"):
            o = model.optimizer
            scales.append([float(o.dynamic_scale.numpy()), int(o.step_counter.numpy()), int(o.iterations.numpy())])
    for key, w in variables(model):
        dump(os.path.join(out, "after", key + ".f32"), w.numpy())
    if model.optimizer.use_ema:
        keys = {id(w.value if hasattr(w, "value") else w): k for k, w in variables(model)}
        keys.update({id(w): k for k, w in variables(model)})
        for var, avg in zip(model.optimizer._trainable_variables, model.optimizer._model_variables_moving_average):
            dump(os.path.join(out, "ema", keys[id(var)] + ".f32"), avg.numpy())
    dump(os.path.join(out, "probs_after.f32"), model(x0, training=False))
    json.dump({"loss0": float(loss0), "step_losses": losses, "loss_scale": scales}, open(os.path.join(out, "loss.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
