"""The notebook's experiments in Keras 3 on TensorFlow 2.18: the reference the
Go pipeline is compared against (accuracy, seconds per epoch, throughput).

It follows the notebook's code paths: arrays from the CIFAR-10 binary batches,
X.astype('float32') / 255, to_categorical, Sequential model, RMSprop,
model.fit(validation_split=0.2) on NumPy arrays, and for --augment
ImageDataGenerator(...).flow(...) with the test set as validation.

Usage:
  keras_reference.py --data DIR [--model shallow|deep|deep-intended]
                     [--epochs 20] [--batch 128] [--augment] [--threads N]
                     [--steps N] [--seed S] [--json OUT]

DIR holds cifar-10-batches-bin/ (what `pipeline data fetch` leaves in the
cache, ~/.cache/cifar-pipeline). --steps caps steps per epoch (benchmarks).
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402


def load_batches(d):
    d = os.path.join(d, "cifar-10-batches-bin") if os.path.isdir(os.path.join(d, "cifar-10-batches-bin")) else d

    def read(names):
        raw = np.concatenate([np.fromfile(os.path.join(d, n), dtype=np.uint8) for n in names]).reshape(-1, 3073)
        y = raw[:, 0].astype("int64")
        x = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x), y

    xtr, ytr = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    xte, yte = read(["test_batch.bin"])
    return (xtr, ytr), (xte, yte)


def set_policy(node, name):
    """Sets every DTypePolicy in a Keras architecture JSON to name."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy":
            node["config"]["name"] = name
        for v in node.values():
            set_policy(v, name)
    elif isinstance(node, list):
        for v in node:
            set_policy(v, name)


def build(keras, name):
    L = keras.layers
    if name == "shallow":
        layers = [L.Conv2D(32, (3, 3), padding="same"), L.Activation("relu"), L.MaxPooling2D(pool_size=(2, 2)),
                  L.Dropout(0.25), L.Flatten(), L.Dense(512), L.Activation("relu"), L.Dropout(0.5),
                  L.Dense(10), L.Activation("softmax")]
    else:
        fourth = L.Conv2D(64, 3, 3) if name == "deep" else L.Conv2D(64, (3, 3))
        layers = [L.Conv2D(32, (3, 3), padding="same"), L.Activation("relu"), L.Conv2D(32, (3, 3), padding="same"),
                  L.Activation("relu"), L.MaxPooling2D(pool_size=(2, 2)), L.Dropout(0.25),
                  L.Conv2D(64, (3, 3), padding="same"), L.Activation("relu"), fourth, L.Activation("relu"),
                  L.MaxPooling2D(pool_size=(2, 2)), L.Dropout(0.25), L.Flatten(), L.Dense(512),
                  L.Activation("relu"), L.Dropout(0.5), L.Dense(10), L.Activation("softmax")]
    return keras.Sequential([keras.Input((32, 32, 3))] + layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="shallow", choices=["shallow", "deep", "deep-intended", "arch"])
    ap.add_argument("--arch", default="", help="with --model arch: a Keras architecture JSON (Go's cifar10_architecture.json)")
    ap.add_argument("--optimizer", default="rmsprop", choices=["rmsprop", "adam"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", default="")
    ap.add_argument("--no-val", action="store_true", help="no validation (benchmarks time training alone)")
    ap.add_argument("--precision", default="", choices=["", "float32", "mixed_bfloat16", "mixed_float16"],
                    help="Keras dtype policy (default: float32, or the policy --arch's layers carry)")
    a = ap.parse_args()

    t_start = time.time()
    import tensorflow as tf
    import keras
    if a.threads:
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    if a.precision:
        keras.config.set_dtype_policy(a.precision)
    keras.utils.set_random_seed(a.seed)

    (xtr, ytr), (xte, yte) = load_batches(a.data)
    Ytr, Yte = keras.utils.to_categorical(ytr, 10), keras.utils.to_categorical(yte, 10)
    Xtr, Xte = xtr.astype("float32") / 255, xte.astype("float32") / 255
    if a.model == "arch":
        if not a.arch:
            ap.error("--model arch needs --arch FILE")
        arch = json.load(open(a.arch))
        if a.precision:
            set_policy(arch, a.precision)
        model = keras.models.model_from_json(json.dumps(arch))
    else:
        model = build(keras, a.model)
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer={"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}[a.optimizer](),
                  metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            self.epochs, self.first_step = [], None

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_train_batch_end(self, batch, logs=None):
            if self.first_step is None:
                self.first_step = time.time() - t_start

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(time.time() - self.t0)

    timer = Timer()
    steps = a.steps or None
    if a.augment:
        try:
            from keras.preprocessing.image import ImageDataGenerator
        except ImportError:  # Keras >= 3.12 keeps it only in the legacy module
            from keras.src.legacy.preprocessing.image import ImageDataGenerator
        datagen = ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
                                     zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
        datagen.fit(Xtr)
        # A full pass per epoch (the notebook's 50000 // 128 = 390 left every
        # second epoch empty on a 391-batch flow).
        n_steps = steps or -(-len(Xtr) // a.batch)
        hist = model.fit(datagen.flow(Xtr, Ytr, batch_size=a.batch), steps_per_epoch=n_steps, epochs=a.epochs,
                         validation_data=None if a.no_val else (Xte, Yte), verbose=2, callbacks=[timer])
        n_train = n_steps * a.batch
    else:
        split = 0.0 if a.no_val else 0.2
        hist = model.fit(Xtr, Ytr, batch_size=a.batch, epochs=a.epochs, validation_split=split, verbose=2,
                         steps_per_epoch=steps, callbacks=[timer])
        n_train = (steps * a.batch) if steps else int(len(Xtr) * (1 - split))
    score = model.evaluate(Xte, Yte, batch_size=a.batch, verbose=0)
    print(f"Test Score: {score[0]:.4f}")
    print(f"Test Accuracy: {score[1]:.4f}")
    ep = timer.epochs[1:] or timer.epochs
    res = {
        "model": a.model, "augment": a.augment, "epochs": a.epochs, "test_loss": float(score[0]),
        "test_accuracy": float(score[1]), "epoch_seconds": timer.epochs,
        "median_epoch_seconds": float(np.median(ep)), "images_per_second": n_train / float(np.median(ep)),
        "time_to_first_step": timer.first_step,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "history": {k: [float(x) for x in v] for k, v in hist.history.items()},
    }
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "history"}), file=sys.stderr)


if __name__ == "__main__":
    main()
