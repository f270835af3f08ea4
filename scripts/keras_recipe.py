"""The recipe of a Go run, trained in Keras 3 on TensorFlow 2.18: issue 15's
"same recipe in Keras on the same machine", accuracy and minutes side by side.

It reads what every `bin/pipeline run` writes into its run directory,
config.resolved.yaml (the recipe) and cifar10_architecture.json (the net, as
Keras's own model JSON), so it follows whatever the preset becomes:

- model: keras.models.model_from_json of the architecture. A conv kernel
  whose config initializer is patch_whitening (Keras sees a null
  initializer) is computed here as graph/whitening.go and airbench's
  init_whitening_conv do (legacy/airbench94.py): from the layer's input on
  the first 5000 training images (after the config's /255 and mean/std),
  eigh of the 2x2-patch covariance in float64, eigenvalues descending,
  eigenvectors / sqrt(lambda + 5e-4), then the same filters negated.
- optimizer: the Keras class of train.optimizer.name with the config's
  Keras arguments (weight_decay, use_ema, ema_momentum,
  ema_overwrite_frequency, ...). learning_rate is a number, one of Keras's
  schedules (keras/src/optimizers/schedules/learning_rate_schedule.py), or
  one_cycle, ours (schedule/schedule.go OneCycle): OneCycle below, in
  float32 in the same op order, so its rates equal Go's.
- loss: categorical_crossentropy with train.label_smoothing; batch size,
  epochs, steps_per_epoch, shuffle and seed from the config.
- data: CIFAR-10 binary batches (--data, default the pipeline's cache),
  data.limit_train/limit_test, data.validation test or split (Keras's last
  fraction), /255 when data.normalize, then (x - mean) / std.
- augmentation (augment.crop, augment.flip), as augment/modern.go: crop =
  pad each side by `padding` (np.pad reflect, or constant value) and take a
  window at offsets uniform in [0, 2*padding]; flip alternate = airbench's
  derandomised flip: image i is mirrored in epoch e iff phase(i) XOR (e
  odd), phase a fair coin per image fixed by the seed. The draws are
  NumPy's, not Go's PCG streams: same distribution, different samples.
  How: each epoch is built at once in NumPy on uint8 images (one vectorised
  copy per crop offset, then one flip), and batches are normalised to
  float32 in a generator that tf.data prefetches on its own thread, so the
  next batches are ready while the train step runs (the step itself is the
  plain compiled Keras train_function, as for array inputs). A float32
  copy of the whole augmented set would cost 600 MB per epoch for nothing.
- validation: the validation set after every epoch (val_accuracy and the
  minutes since training started: the accuracy-vs-minutes curve); at the
  end, the EMA weights when use_ema (Keras's fit finalizes them), test
  accuracy, and with evaluate.tta the TTA accuracy as graph/forward.go's
  tta: mean of x and its mirror; with evaluate.tta_translate t, airbench's
  0.5 * that + 0.25 * the same on x shifted up-left and down-right by t
  (reflect padding).

Usage:
  keras_recipe.py --run-dir DIR [--data DIR] [--epochs N] [--steps N]
                  [--threads N] [--json OUT] [--print-schedule N]

--epochs/--steps override train.epochs/train.steps_per_epoch for a quick
check; then the schedule's step counts (warmup_steps, decay_steps,
boundaries) are scaled by new total steps / the config's total steps, and
the script says so. --print-schedule N prints the learning rate of steps
0..N-1 as JSON and exits (tests compare it with Go's schedule package).
Errors are one line, "keras_recipe: error: ...", exit status 2, and no
--json file.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keras_reference import load_batches  # noqa: E402

PROG = "keras_recipe"
# graph/whitening.go: whiteningEpsilon and WhiteningImages (airbench's).
WHITENING_EPSILON = 5e-4
WHITENING_IMAGES = 5000
# The optimizers Go registers (graph/*.go RegisterOptimizer) and their
# Keras classes.
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
SCHEDULES = {"exponential_decay": "ExponentialDecay", "piecewise_constant_decay": "PiecewiseConstantDecay",
             "cosine_decay": "CosineDecay", "polynomial_decay": "PolynomialDecay", "one_cycle": None}
# The ImageDataGenerator transforms (augment/params.go), not done here.
WARP_KEYS = ["rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
             "channel_shift_range", "brightness_range", "horizontal_flip", "vertical_flip"]


class RecipeError(Exception):
    """A bad flag, run directory or config key: one line naming it and the fix."""


def get(cfg, path, default=None):
    node = cfg
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return default
        node = node[k]
    return node


def read_run_dir(run_dir):
    import yaml
    cfg_path = os.path.join(run_dir, "config.resolved.yaml")
    arch_path = os.path.join(run_dir, "cifar10_architecture.json")
    for p in (cfg_path, arch_path):
        if not os.path.isfile(p):
            raise RecipeError(f"{p}: missing; --run-dir must be a directory `bin/pipeline run` wrote")
    try:
        with open(cfg_path) as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise RecipeError(f"{cfg_path}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("train"), dict) or not isinstance(cfg.get("model"), dict):
        raise RecipeError(f"{cfg_path}: not a pipeline config (no train: and model: mappings)")
    try:
        with open(arch_path) as f:
            arch = json.load(f)
    except ValueError as e:
        raise RecipeError(f"{arch_path}: not JSON ({e})") from None
    if not isinstance(arch, dict) or "class_name" not in arch or "config" not in arch:
        raise RecipeError(f"{arch_path}: not a Keras model JSON (no class_name/config)")
    return cfg, cfg_path, arch


class Recipe:
    """The config's recipe, checked before TensorFlow is imported."""

    def __init__(self, cfg, where):
        def need(cond, key, msg):
            if not cond:
                raise RecipeError(f"{where}: {key}: {msg}")

        self.name = cfg.get("name") or "run"
        self.seed = int(get(cfg, "seed", 0) or 0)
        t = cfg["train"]
        self.batch = get(cfg, "train.batch_size")
        need(isinstance(self.batch, int) and self.batch > 0, "train.batch_size", f"{self.batch!r} must be an integer > 0")
        self.epochs = get(cfg, "train.epochs")
        need(isinstance(self.epochs, int) and self.epochs > 0, "train.epochs", f"{self.epochs!r} must be an integer > 0")
        self.steps_cap = get(cfg, "train.steps_per_epoch", 0) or 0
        need(isinstance(self.steps_cap, int) and self.steps_cap >= 0, "train.steps_per_epoch", f"{self.steps_cap!r} must be an integer >= 0")
        self.shuffle = bool(t.get("shuffle", True))
        loss = t.get("loss", "categorical_crossentropy")
        need(loss == "categorical_crossentropy", "train.loss", f"{loss!r}: only categorical_crossentropy is reproduced here")
        self.label_smoothing = float(t.get("label_smoothing", 0) or 0)
        need(not t.get("callbacks"), "train.callbacks", "callbacks are not reproduced here; run the Go config without them")
        opt = t.get("optimizer")
        need(isinstance(opt, dict) and opt.get("name") in OPTIMIZERS, "train.optimizer.name",
             f"{get(cfg, 'train.optimizer.name')!r} is not one of {sorted(OPTIMIZERS)}")
        self.optimizer = dict(opt)
        lr = self.optimizer.get("learning_rate", None)
        if isinstance(lr, dict):
            need(lr.get("schedule") in SCHEDULES, "train.optimizer.learning_rate.schedule",
                 f"{lr.get('schedule')!r} is not one of {sorted(SCHEDULES)}")

        self.normalize = bool(get(cfg, "data.normalize", True))
        self.mean = get(cfg, "data.mean") or []
        self.std = get(cfg, "data.std") or []
        need(len(self.mean) == len(self.std), "data.std", f"{len(self.std)} values for {len(self.mean)} means")
        self.validation = get(cfg, "data.validation", "split")
        need(self.validation in ("split", "test"), "data.validation", f"{self.validation!r}: want split or test")
        self.validation_split = float(get(cfg, "data.validation_split", 0) or 0)
        self.limit_train = int(get(cfg, "data.limit_train", 0) or 0)
        self.limit_test = int(get(cfg, "data.limit_test", 0) or 0)
        need(not get(cfg, "data.synthetic.train"), "data.synthetic.train", "synthetic data is not read here; pass CIFAR-10 batches with --data")

        a = cfg.get("augment") or {}
        self.crop_pad, self.crop_mode, self.crop_value, self.flip = 0, "reflect", 0, "none"
        if a.get("enabled"):
            for k in WARP_KEYS:
                v = a.get(k)
                need(not v, f"augment.{k}", f"{v!r}: the ImageDataGenerator transforms are not reproduced here (only crop and flip)")
            need(not (get(a, "cutout.size") and get(a, "cutout.count")), "augment.cutout", "cutout is not reproduced here")
            self.crop_pad = int(get(a, "crop.padding", 0) or 0)
            self.crop_mode = get(a, "crop.mode", "reflect") or "reflect"
            self.crop_value = int(get(a, "crop.value", 0) or 0)
            need(self.crop_mode in ("reflect", "constant"), "augment.crop.mode", f"{self.crop_mode!r}: want reflect or constant")
            need(0 <= self.crop_pad < 32, "augment.crop.padding", f"{self.crop_pad} must be in [0, 32)")
            self.flip = a.get("flip", "none") or "none"
            need(self.flip in ("none", "random", "alternate"), "augment.flip", f"{self.flip!r}: want none, random or alternate")

        self.tta = bool(get(cfg, "evaluate.tta", False))
        self.tta_translate = int(get(cfg, "evaluate.tta_translate", 0) or 0)
        self.intra = int(get(cfg, "runtime.intra_op_threads", 0) or 0)
        self.inter = int(get(cfg, "runtime.inter_op_threads", 0) or 0)
        self.xla = bool(get(cfg, "runtime.xla", False))
        self.whitened = [i for i, layer in enumerate(get(cfg, "model.layers") or [])
                         if isinstance(layer, dict) and "patch_whitening" in (layer.get("kernel_initializer"), layer.get("bias_initializer"))]
        for i in self.whitened:
            need(cfg["model"]["layers"][i].get("kernel_initializer") == "patch_whitening", f"model.layers[{i}].bias_initializer",
                 "patch_whitening initializes a conv2d kernel only")

    def augment_summary(self):
        parts = []
        if self.crop_pad:
            parts.append(f"crop {self.crop_pad} {self.crop_mode}")
        if self.flip != "none":
            parts.append(f"flip {self.flip}")
        return ", ".join(parts) or "none"


def steps_per_epoch(n, batch, cap):
    """train/fit.go StepsPerEpoch: a full pass keeps the last partial batch; cap limits it."""
    full = -(-n // batch)
    return min(full, cap) if cap > 0 else full


def scale_schedule(lr, factor):
    """The schedule mapping with its step counts scaled by factor (warmup_steps >= 0, decay_steps >= 1)."""
    if not isinstance(lr, dict) or factor == 1:
        return lr
    lr = dict(lr)
    if "warmup_steps" in lr:
        lr["warmup_steps"] = max(0, round(lr["warmup_steps"] * factor))
    if "decay_steps" in lr:
        lr["decay_steps"] = max(1, round(lr["decay_steps"] * factor))
    if "boundaries" in lr:
        b, prev = [], -1
        for x in lr["boundaries"]:
            prev = max(prev + 1, round(x * factor))
            b.append(prev)
        lr["boundaries"] = b
    return lr


def make_one_cycle(keras):
    @keras.saving.register_keras_serializable(package="cifar_pipeline", name="OneCycle")
    class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
        """schedule/schedule.go's one_cycle: linear warmup from initial_learning_rate
        to warmup_target over warmup_steps (CosineDecay._warmup_function), then
        linear decay to end_learning_rate over decay_steps (PolynomialDecay,
        power 1, no cycle), constant after; float32, Keras's op order."""

        def __init__(self, initial_learning_rate, warmup_target, warmup_steps, decay_steps, end_learning_rate=0.0, name="OneCycle"):
            super().__init__()
            self.initial_learning_rate, self.warmup_target = initial_learning_rate, warmup_target
            self.warmup_steps, self.decay_steps, self.end_learning_rate = warmup_steps, decay_steps, end_learning_rate
            self.name = name

        def __call__(self, step):
            ops = keras.ops
            initial = ops.convert_to_tensor(self.initial_learning_rate, "float32")
            target = ops.cast(self.warmup_target, "float32")
            end = ops.cast(self.end_learning_rate, "float32")
            warmup_steps = ops.cast(self.warmup_steps, "float32")
            decay_steps = ops.cast(self.decay_steps, "float32")
            step = ops.cast(step, "float32")
            # warmup_steps 0: the 0/0 of the unused branch is discarded by where.
            warm = (target - initial) * (step / warmup_steps) + initial
            p = ops.minimum(step - warmup_steps, decay_steps) / decay_steps
            decay = (target - end) * (1 - p) + end  # pow(1 - p, 1) is exact
            return ops.where(step < warmup_steps, warm, decay)

        def get_config(self):
            return {"initial_learning_rate": self.initial_learning_rate, "warmup_target": self.warmup_target,
                    "warmup_steps": self.warmup_steps, "decay_steps": self.decay_steps,
                    "end_learning_rate": self.end_learning_rate, "name": self.name}

    return OneCycle


def learning_rate(keras, lr):
    """A float, or the Keras schedule object of a config schedule mapping."""
    if not isinstance(lr, dict):
        return lr
    args = {k: v for k, v in lr.items() if k != "schedule"}
    cls_name = SCHEDULES[lr["schedule"]]
    cls = make_one_cycle(keras) if cls_name is None else getattr(keras.optimizers.schedules, cls_name)
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"train.optimizer.learning_rate: {e}") from None


def make_optimizer(keras, opt, lr):
    args = {k: v for k, v in opt.items() if k not in ("name", "learning_rate", "learning_rate_multipliers")}
    mults = opt.get("learning_rate_multipliers") or {}
    # Go writes 0 for Keras's None (weight decay off, no overwrite).
    for k in ("weight_decay", "ema_overwrite_frequency"):
        if k in args and not args[k]:
            args[k] = None
    if lr is not None:
        args["learning_rate"] = learning_rate(keras, lr)
    try:
        cls = getattr(keras.optimizers, OPTIMIZERS[opt["name"]])
        if mults:
            from keras_multipliers import with_lr_multipliers
            cls = with_lr_multipliers(cls, {str(k): float(v) for k, v in mults.items()})
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"train.optimizer: {e}") from None


def preprocess(x, r):
    """graph/forward.go Preprocess.apply in float32: /255 when normalize, then (x - mean) / std."""
    x = x.astype(np.float32)
    if r.normalize:
        x /= np.float32(255)
    if r.mean:
        x = (x - np.array(r.mean, np.float32)) / np.array(r.std, np.float32)
    return x


def whitening_kernel(x, kh, kw, filters):
    """airbench's init_whitening_conv on x (N, H, W, C float): the kh x kw patch
    covariance in float64 (accumulated in chunks), its eigenvectors by descending
    eigenvalue divided by sqrt(lambda + eps), then the negated copies."""
    n, h, w, c = x.shape
    d = kh * kw * c
    if filters != 2 * d:
        raise RecipeError(f"patch_whitening needs filters = 2 x kernel height x kernel width x input channels = {2 * d}, not {filters}")
    cov, rows = np.zeros((d, d)), 0
    for i in range(0, n, 250):
        xi = x[i:i + 250].astype(np.float64)
        # Patches flattened (row, col, channel): the layout of a Keras kernel.
        p = np.stack([xi[:, a:a + h - kh + 1, b:b + w - kw + 1, :] for a in range(kh) for b in range(kw)], axis=3).reshape(-1, d)
        cov += p.T @ p
        rows += len(p)
    lam, vec = np.linalg.eigh(cov / rows)
    lam, vec = lam[::-1], vec[:, ::-1]
    k = vec / np.sqrt(lam + WHITENING_EPSILON)
    return np.concatenate([k, -k], axis=1).reshape(kh, kw, c, filters).astype(np.float32)


def init_whitening(keras, model, r, x_fit):
    """Sets every patch_whitening kernel from the first WHITENING_IMAGES training
    images (pipeline/run.go initFromData); returns {layer name: kernel}."""
    layers = [lay for lay in model.layers if not isinstance(lay, keras.layers.InputLayer)]
    n = min(len(x_fit), WHITENING_IMAGES)
    x = preprocess(x_fit[:n], r)
    kernels = {}
    for i in r.whitened:
        if i >= len(layers) or not isinstance(layers[i], keras.layers.Conv2D):
            raise RecipeError(f"model.layers[{i}]: patch_whitening on a layer that is not the architecture's Conv2D number {i}")
        layer = layers[i]
        # The layer's input, through the layers before it (already initialised).
        inp = x if i == 0 else keras.Model(model.inputs, layer.input).predict(x, batch_size=500, verbose=0)
        kh, kw, _, filters = layer.kernel.shape
        kernels[layer.name] = whitening_kernel(inp, kh, kw, filters)
        layer.kernel.assign(kernels[layer.name])
    return kernels


def epoch_images(r, padded, x, epoch, order, rng, phase):
    """Epoch `epoch`'s uint8 images in visiting order, cropped and flipped as
    augment/modern.go drawModern draws: crop offsets uniform in [0, 2*padding],
    then the flip (alternate: phase XOR epoch odd; random: a fair coin)."""
    n = len(order)
    dy = dx = None
    if r.crop_pad:
        k = 2 * r.crop_pad + 1
        dy, dx = rng.integers(0, k, n), rng.integers(0, k, n)
    flip = None
    if r.flip == "random":
        flip = rng.random(n) < 0.5
    elif r.flip == "alternate":
        flip = phase[order] ^ (epoch % 2 == 1)
    return crop_flip(r.crop_pad, padded, x, order, dy, dx, flip)


def crop_flip(pad, padded, x, order, dy, dx, flip):
    """augment/modern.go cropFlip, vectorised: image order[i]'s window at
    (dy[i], dx[i]) of the padded images (one copy per offset), mirrored
    left-right where flip[i]."""
    out = x[order] if pad == 0 else np.empty((len(order),) + x.shape[1:], np.uint8)
    if pad:
        h, w = x.shape[1:3]
        for oy in range(2 * pad + 1):
            for ox in range(2 * pad + 1):
                sel = np.nonzero((dy == oy) & (dx == ox))[0]
                out[sel] = padded[order[sel], oy:oy + h, ox:ox + w]
    if flip is not None:
        out[flip] = out[flip][:, :, ::-1]
    return out


def pad_images(x, pad, mode, value):
    """The crop's padded images (np.pad reflect, or constant value): once per run."""
    widths = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return np.pad(x, widths, mode="reflect") if mode == "reflect" else np.pad(x, widths, constant_values=value)


def main():
    ap = argparse.ArgumentParser(prog=PROG, description="Train a Go run directory's recipe in Keras 3.")
    ap.add_argument("--run-dir", required=True, help="a directory `bin/pipeline run` wrote")
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/cifar-pipeline"),
                    help="directory holding cifar-10-batches-bin/ (default: the pipeline's cache)")
    ap.add_argument("--epochs", type=int, default=0, help="override train.epochs (scales the schedule)")
    ap.add_argument("--steps", type=int, default=0, help="override train.steps_per_epoch (scales the schedule)")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow intra- and inter-op threads (default: the config's runtime)")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--print-schedule", type=int, default=0, metavar="N",
                    help="print the learning rate of optimiser steps 0..N-1 as JSON and exit")
    a = ap.parse_args()
    try:
        run(ap, a)
    except RecipeError as e:
        ap.exit(2, f"{PROG}: error: {e}\n")


def run(ap, a):
    t_start = time.time()
    for flag, v in (("--epochs", a.epochs), ("--steps", a.steps), ("--threads", a.threads), ("--print-schedule", a.print_schedule)):
        if v < 0:
            raise RecipeError(f"{flag} {v}: must be >= 1 (or leave it out)")
    if not os.path.isdir(a.run_dir):
        raise RecipeError(f"--run-dir {a.run_dir}: not a directory")
    if a.json and not os.path.isdir(os.path.dirname(os.path.abspath(a.json))):
        raise RecipeError(f"--json {a.json}: its directory does not exist")
    cfg, cfg_path, arch = read_run_dir(a.run_dir)
    r = Recipe(cfg, cfg_path)

    data = None
    if not a.print_schedule:
        if not os.path.isdir(a.data):
            raise RecipeError(f"--data {a.data}: not a directory; run `bin/pipeline data fetch` or pass the CIFAR-10 directory")
        try:
            data = load_batches(a.data)
        except (OSError, ValueError) as e:
            raise RecipeError(f"--data {a.data}: cannot read the CIFAR-10 binary batches ({e})") from None
    # The training set Go fits on (pipeline/run.go loadData, dataset.ValidationSplit).
    n_train = 50000 if data is None else len(data[0][0])
    if r.limit_train:
        n_train = min(n_train, r.limit_train)
    n_fit = n_train
    if r.validation == "split" and r.validation_split > 0:
        n_fit = max(0, min(n_train, math.floor(n_train * (1.0 - r.validation_split))))
    if n_fit == 0:
        raise RecipeError(f"{cfg_path}: data: no training images left")
    epochs = a.epochs or r.epochs
    steps = steps_per_epoch(n_fit, r.batch, a.steps or r.steps_cap)
    cfg_total = r.epochs * steps_per_epoch(n_fit, r.batch, r.steps_cap)
    scale = epochs * steps / cfg_total
    lr_cfg = scale_schedule(r.optimizer.get("learning_rate"), scale)
    if scale != 1 and isinstance(lr_cfg, dict):
        print(f"{PROG}: schedule step counts scaled x{scale:.4g} to the overridden {epochs} epochs x {steps} steps: {lr_cfg}")

    import tensorflow as tf
    import keras
    threads = a.threads or None
    intra, inter = threads or r.intra, threads or r.inter
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    if a.print_schedule:
        sched = learning_rate(keras, lr_cfg)
        if sched is None:  # no learning_rate key: the optimizer's Keras default
            sched = float(make_optimizer(keras, r.optimizer, None).learning_rate)
        rates = [float(sched(tf.constant(s, tf.int64))) if callable(sched) else float(np.float32(sched))
                 for s in range(a.print_schedule)]
        print(json.dumps({"learning_rate": rates}))
        return
    keras.utils.set_random_seed(r.seed)

    (xtr, ytr), (xte, yte) = data
    xtr, ytr = xtr[:n_train], ytr[:n_train]
    if r.limit_test:
        xte, yte = xte[:r.limit_test], yte[:r.limit_test]
    x_fit, y_fit = xtr[:n_fit], ytr[:n_fit]
    x_val, y_val = (xte, yte) if r.validation == "test" else (xtr[n_fit:], ytr[n_fit:])
    classes = int(get(cfg, "data.classes", 10) or 10)

    try:
        model = keras.models.model_from_json(json.dumps(arch))
    except Exception as e:  # Keras raises many types for a bad config
        raise RecipeError(f"{os.path.join(a.run_dir, 'cifar10_architecture.json')}: Keras cannot build it ({str(e).splitlines()[0]})") from None
    white = init_whitening(keras, model, r, x_fit) if r.whitened else {}
    optimizer = make_optimizer(keras, r.optimizer, lr_cfg)
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing),
                  metrics=["accuracy"], jit_compile=r.xla)

    # Training batches: see the module doc for why NumPy epochs + a prefetched generator.
    rng = np.random.default_rng(r.seed)
    phase = rng.random(n_fit) < 0.5  # the alternate flip's per-image coin
    padded = pad_images(x_fit, r.crop_pad, r.crop_mode, r.crop_value) if r.crop_pad else None
    y_fit_hot = keras.utils.to_categorical(y_fit, classes).astype(np.float32)
    per_epoch = min(n_fit, steps * r.batch)

    def batches():
        for e in range(epochs):
            order = rng.permutation(n_fit) if r.shuffle else np.arange(n_fit)
            order = order[:per_epoch]
            xe = epoch_images(r, padded, x_fit, e, order, rng, phase)
            ye = y_fit_hot[order]
            for i in range(0, per_epoch, r.batch):
                yield preprocess(xe[i:i + r.batch], r), ye[i:i + r.batch]

    h, w, c = x_fit.shape[1:]
    train_ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, h, w, c), tf.float32), tf.TensorSpec((None, classes), tf.float32))).prefetch(2)
    def eval_set(x, y):
        xf = preprocess(x, r)
        return xf, tf.data.Dataset.from_tensor_slices((xf, keras.utils.to_categorical(y, classes).astype(np.float32))).batch(r.batch)

    xte_f, test_ds = eval_set(xte, yte)
    val_ds = test_ds if r.validation == "test" else (eval_set(x_val, y_val)[1] if len(x_val) else None)

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history, self.train_seconds = [], []

        def on_train_begin(self, logs=None):
            self.t_train = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.t_val = time.time(), None

        def on_test_begin(self, logs=None):
            if self.t_val is None:
                self.t_val = time.time()

        def on_epoch_end(self, epoch, logs=None):
            now = time.time()
            self.train_seconds.append((self.t_val or now) - self.t0)
            logs = logs or {}
            self.history.append({"epoch": epoch + 1, "minutes": (now - self.t_train) / 60,
                                 "train_seconds": self.train_seconds[-1],
                                 "loss": float(logs.get("loss", float("nan"))),
                                 "accuracy": float(logs.get("accuracy", float("nan"))),
                                 "val_accuracy": float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
                                 "val_loss": float(logs["val_loss"]) if "val_loss" in logs else None,
                                 "learning_rate": float(self.model.optimizer.learning_rate)})

    clock = Clock()
    t_fit = time.time()
    model.fit(train_ds, epochs=epochs, steps_per_epoch=steps, validation_data=val_ds, verbose=2, callbacks=[clock], shuffle=False)
    train_minutes = (time.time() - t_fit) / 60

    # Final: the weights fit left (EMA averages when use_ema: finalize_variable_values).
    test_loss, test_acc = model.evaluate(test_ds, verbose=0)
    tta_acc = tta_accuracy(tf, model, xte_f, yte, r.batch, r.tta_translate) if r.tta else None

    med = float(np.median(clock.train_seconds))
    res = {
        "name": r.name, "run_dir": os.path.abspath(a.run_dir), "tensorflow": tf.__version__, "keras": keras.__version__,
        "epochs": epochs, "steps_per_epoch": steps, "batch_size": r.batch, "train_images": n_fit,
        "validation_images": len(x_val), "test_images": len(xte), "whitening_images": min(n_fit, WHITENING_IMAGES) if white else 0,
        "augment": r.augment_summary(), "use_ema": bool(r.optimizer.get("use_ema")),
        "schedule_scale": scale, "learning_rate": lr_cfg,
        "history": clock.history,
        # The whitening kernels, flattened (kh, kw, in, out): small (2x2x3x24 = 288 values).
        "whitening": {k: [float(v) for v in w.ravel()] for k, w in white.items()},
        "test_loss": float(test_loss), "test_accuracy": float(test_acc), "tta_accuracy": tta_acc,
        "train_minutes": train_minutes, "wall_minutes": (time.time() - t_start) / 60,
        "median_epoch_seconds": med, "images_per_second": per_epoch / med if med > 0 else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(), "cpus": os.cpu_count()},
    }
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=1)
        os.replace(tmp, a.json)
    tta = f", TTA {tta_acc:.4f}" if tta_acc is not None else ""
    ips = f"{res['images_per_second']:.0f}" if res["images_per_second"] else "?"
    print(f"{PROG}: {r.name}: {epochs} epochs in {train_minutes:.2f} min ({res['wall_minutes']:.2f} wall), "
          f"test {test_acc:.4f}{tta}, {ips} img/s, peak RSS {res['peak_rss_mib']:.0f} MiB")


def tta_predict(tf, model, x, batch, translate):
    """graph/forward.go tta's probabilities on x (preprocessed float32): 0.5 *
    (f(x) + f(mirror x)); with translate t, 0.5 * that + 0.25 * (the same on x
    shifted up-left by t + down-right by t), reflect padding (airbench's
    infer_mirror_translate)."""
    h, w = x.shape[1:3]

    def mirror(xb):
        return (model(xb, training=False) + model(tf.reverse(xb, [2]), training=False)) * 0.5

    @tf.function(reduce_retracing=True)
    def predict(xb):
        mean = mirror(xb)
        if translate <= 0:
            return mean
        t = translate
        padded = tf.pad(xb, [[0, 0], [t, t], [t, t], [0, 0]], mode="REFLECT")
        shifted = mirror(padded[:, :h, :w]) + mirror(padded[:, 2 * t:2 * t + h, 2 * t:2 * t + w])
        return mean * 0.5 + shifted * 0.25

    return np.concatenate([predict(tf.constant(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def tta_accuracy(tf, model, x, y, batch, translate):
    return float(np.mean(np.argmax(tta_predict(tf, model, x, batch, translate), axis=1) == y))


if __name__ == "__main__":
    main()
