"""Time Keras's ImageDataGenerator.flow with the notebook's augmentation.

Usage: python scripts/augment_bench.py [--bin test_batch.bin] [--images 2560]

Reads CIFAR-10 images from an official binary batch file when given
(1 label byte + 3072 bytes CHW per record), else uses random uint8 images
(scipy's warp time does not depend on the content). Prints images/s of one
pass of flow(batch_size=128), the way the notebook trains on it, for
comparison with `go test -run x -bench Augment -cpu 1,2 ./augment/`.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
from keras.src.legacy.preprocessing.image import ImageDataGenerator  # noqa: E402


def load(path, n):
    if path:
        rec = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)[:n]
        x = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, rec[:, 0]
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="")
    ap.add_argument("--images", type=int, default=2560)
    args = ap.parse_args()
    x, y = load(args.bin, args.images)
    gen = ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
                             zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
    it = gen.flow(x, y, batch_size=128, shuffle=True, seed=1)
    next(it)  # warm up
    t0 = time.perf_counter()
    n = 0
    for _ in range(len(it)):
        bx, _ = next(it)
        n += len(bx)
    dt = time.perf_counter() - t0
    print(f"keras ImageDataGenerator.flow: {n} images in {dt:.2f} s = {n / dt:.0f} images/s (1 process)")


if __name__ == "__main__":
    main()
