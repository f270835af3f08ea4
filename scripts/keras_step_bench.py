"""Keras 3 side of `go test -bench BenchmarkTrainStep ./graph/`: the time of
one training step of the notebook's nets in `model.fit` on NumPy arrays.

Usage:
  keras_step_bench.py [--model shallow|deep|deep-intended|arch --arch JSON] [--steps 60] [--epochs 4]
                      [--batch 128] [--intra N] [--inter N] [--profile DIR]
                      [--precision float32|mixed_bfloat16]

Data is random uint8 images /255 and one-hot labels (the step cost does not
depend on the values). Each epoch is `steps` steps; the first epoch (tracing,
warm-up) is dropped and the median of the others is reported as images/s
and ms/step, one JSON line on stdout. --intra/--inter set TensorFlow's
thread pools exactly as the Go side's BENCH_INTRA/BENCH_INTER (0: default).
--profile DIR writes a TensorFlow profiler trace of 10 steps to DIR.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="shallow", choices=["shallow", "deep", "deep-intended", "arch"])
    ap.add_argument("--arch", default="", help="with --model arch: a Keras architecture JSON (Go's cifar10_architecture.json)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--intra", type=int, default=0)
    ap.add_argument("--inter", type=int, default=0)
    ap.add_argument("--profile", default="")
    ap.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"],
                    help="Keras dtype policy, set before the model is built")
    a = ap.parse_args()

    import tensorflow as tf
    import keras
    from keras_reference import build, set_policy
    if a.intra:
        tf.config.threading.set_intra_op_parallelism_threads(a.intra)
    if a.inter:
        tf.config.threading.set_inter_op_parallelism_threads(a.inter)
    keras.config.set_dtype_policy(a.precision)
    keras.utils.set_random_seed(1)
    n = a.steps * a.batch
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8).astype("float32") / 255
    y = keras.utils.to_categorical(rng.integers(0, 10, size=n), 10)
    if a.model == "arch":
        arch = json.load(open(a.arch))
        set_policy(arch, a.precision)
        model = keras.models.model_from_json(json.dumps(arch))
    else:
        model = build(keras, a.model)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(), metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(time.perf_counter() - self.t0)

    timer = Timer()
    model.fit(x, y, batch_size=a.batch, epochs=a.epochs, verbose=0, shuffle=True, callbacks=[timer])
    if a.profile:
        tf.profiler.experimental.start(a.profile)
        model.fit(x[: 10 * a.batch], y[: 10 * a.batch], batch_size=a.batch, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
    ep = sorted(timer.epochs[1:])
    med = ep[len(ep) // 2]
    print(json.dumps({"model": a.model, "precision": a.precision, "intra": a.intra, "inter": a.inter, "steps": a.steps,
                      "epoch_seconds": timer.epochs, "ms_per_step": 1000 * med / a.steps,
                      "images_per_second": n / med}))


if __name__ == "__main__":
    main()
