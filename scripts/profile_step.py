#!/usr/bin/env python3
"""Per-op profile of one Go training step, from TensorFlow's own step stats.

The Go model's GraphDef (written by `BENCH_GRAPHDEF=DIR go test -run XXX
-bench TrainStep ./graph/`) is imported into a TF 2.18 session of the same
libtensorflow, its variables initialised, and the training step (fetch
train_loss, target the optimiser's NoOp) run with RunOptions FULL_TRACE.
With inter_op=1 the op times add up to the wall time, so the table says
where a step's time goes.

Usage: .venv/bin/python scripts/profile_step.py DIR/deep.pb [--steps 10] [--intra 0] [--inter 1] [--top 25]
                                               [--precision float32|mixed_bfloat16]
"""
import argparse
import collections
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import message  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graphdef")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--intra", type=int, default=0)
    ap.add_argument("--inter", type=int, default=1)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                    help="the runtime.precision the graph was benchmarked with (mixed_bfloat16 turns on the "
                         "session's auto_mixed_precision_onednn_bfloat16 rewrite, as graph.Compile does)")
    a = ap.parse_args()

    gd = tf.compat.v1.GraphDef()
    try:
        with open(a.graphdef, "rb") as f:
            gd.ParseFromString(f.read())
    except (OSError, message.DecodeError) as e:
        sys.exit(f"profile_step: read {a.graphdef}: {e} (write one with BENCH_GRAPHDEF=DIR go test -run XXX -bench TrainStep ./graph/)")
    names = {n.name for n in gd.node}
    missing = [n for n in ("images/Placeholder", "labels/Placeholder", "dropout_seed/Placeholder", "train_loss/Mean/Mean")
               if n not in names]
    if missing or not any(n.op == "NoOp" for n in gd.node):
        sys.exit(f"profile_step: {a.graphdef} is not a Go training graph (missing {', '.join(missing) or 'the train NoOp'}); "
                 "write one with BENCH_GRAPHDEF=DIR go test -run XXX -bench TrainStep ./graph/")
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=a.intra, inter_op_parallelism_threads=a.inter)
    if a.precision == "mixed_bfloat16":
        from tensorflow.core.protobuf import rewriter_config_pb2
        cfg.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    sess = tf.compat.v1.Session(graph=g, config=cfg)

    rng = np.random.default_rng(1)
    # Initialise every variable through its init placeholder (Glorot-sized
    # uniform values: step cost does not depend on them).
    for n in gd.node:
        if n.op in ("AssignVariableOp", "Assign") and n.input[1].endswith("/init/Placeholder"):
            ph = g.get_tensor_by_name(n.input[1] + ":0")
            shape = ph.shape.as_list()
            if ph.dtype == tf.string:
                val = np.array(b"", dtype=object)
            else:
                val = (rng.uniform(-0.05, 0.05, shape) if shape else np.array(0)).astype(ph.dtype.as_numpy_dtype)
            sess.run(n.name, {ph: val})
    images = g.get_tensor_by_name("images/Placeholder:0")
    h, w, c = images.shape.as_list()[1:]
    feeds = {images: rng.integers(0, 256, (a.batch, h, w, c), dtype=np.uint8),
             "labels/Placeholder:0": rng.integers(0, 10, a.batch, dtype=np.int32)}
    fetch = ["train_loss/Mean/Mean:0", [n.name for n in gd.node if n.op == "NoOp"][-1]]
    seed = g.get_tensor_by_name("dropout_seed/Placeholder:0")
    for i in range(3):
        sess.run(fetch, {**feeds, seed: [1, -1 - i]})
    t0 = time.perf_counter()
    for i in range(a.steps):
        sess.run(fetch, {**feeds, seed: [1, i]})
    wall = (time.perf_counter() - t0) / a.steps * 1e3

    opts = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    per_op = collections.Counter()
    for i in range(a.steps):
        md = tf.compat.v1.RunMetadata()
        sess.run(fetch, {**feeds, seed: [2, i]}, options=opts, run_metadata=md)
        for dev in md.step_stats.dev_stats:
            if "/device:CPU" not in dev.device or "stream" in dev.device:
                continue
            for ns in dev.node_stats:
                kernel = ns.timeline_label.split(" = ")[-1].split("(")[0] if ns.timeline_label else ns.node_name
                per_op[kernel] += (ns.op_end_rel_micros - ns.op_start_rel_micros) / 1e3 / a.steps
    total = sum(per_op.values())
    print(f"{os.path.basename(a.graphdef)}: {wall:.1f} ms/step untraced (intra {a.intra}, inter {a.inter}), "
          f"traced op sum {total:.1f} ms")
    print(f"{'kernel':48s} {'ms/step':>8s} {'share':>6s}")
    for k, v in per_op.most_common(a.top):
        print(f"{k:48s} {v:8.2f} {v / total:6.1%}")


if __name__ == "__main__":
    main()
