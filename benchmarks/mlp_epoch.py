"""Steady-state epoch time of the course's reference MLP: NumPy vs Keras vs the matrix-multiply bound.

    python benchmarks/mlp_epoch.py [--data-dir DIR] [--epochs 5] [--threads 1,2]    (or: make bench)

The model is experiments/mlp_mnist.py's default (784 -> 64 -> 32 -> 10, ReLU, softmax, SGD, batch 64)
on the 54,000 training images of its default split (full MNIST from --data-dir / DLBENCH_DATA_DIR,
else the shipped sample with a warning). Every variant runs in this one process, one after the
other, and its epoch time is the median of the epochs after the first (the first includes tracing,
compilation and cache warm-up). Epochs here are training only: no validation pass.

Reference figures printed alongside:
- peak: float32 GFLOP/s of large (2048 x 2048) matrix products, per BLAS thread count;
- matrix-multiply bound: the time one epoch's own GEMMs take when run alone, back to back, with
  the same batch-64 shapes and preallocated outputs (forward A W, backward A^T delta and
  delta W^T). It is the floor for any implementation that does these products with this BLAS;
  everything above it is gathering the batch, element-wise work and Python overhead.
  The fastest NumPy epoch is then split into its parts: the products (the bound), gathering the
  shuffled batches and the SGD updates (each timed alone, same calls as fit) and, by difference,
  the rest: about thirty small element-wise calls per batch, the Python loop and cache misses.
FLOPs per epoch count multiply-adds as 2: forward 2 N sum(n_in n_out), backward the weight
gradients (same again) plus the input gradients of every layer but the first.
Wall time is what is compared; CPU time of this process is shown too, as a hint of how much
other load on the machine disturbed the run (wall > CPU with one thread means waiting).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Runnable from a checkout.

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from dlbench import data as data_module  # noqa: E402
from dlbench.numpy_nn import SGD, NumpyMLP  # noqa: E402

LAYER_SIZES = (784, 64, 32, 10)
BATCH_SIZE = 64
LEARNING_RATE = 0.01


def load_training_images(data_dir: str | None):
    dataset = data_module.load("mnist", data_module.DataOptions.from_environment(data_dir=data_dir,
                                                                                 allow_download=False))
    if dataset.source != data_module.SOURCE_FULL:
        print(f"WARNING: full MNIST not found, timing the {len(dataset.x_train)}-image sample: epoch "
              f"times are not comparable with full-data figures", flush=True)
    x = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float32) / 255.0
    y = dataset.y_train.astype(np.int64)
    # The experiment's default split: 10 % held out for validation, the rest trains.
    train = np.random.default_rng(0).permutation(len(x))[int(round(0.1 * len(x))):]
    return x[train], y[train], dataset.source


def flops_per_epoch(samples: int) -> tuple[float, float]:
    products = [n_in * n_out for n_in, n_out in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:])]
    forward = 2.0 * samples * sum(products)
    backward = 2.0 * samples * (sum(products) + sum(products[1:]))  # dW all layers, dA all but first.
    return forward, backward


def timed(function, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``function()`` over ``repeats`` calls, after one warm-up."""
    function()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def matmul_peak_gflops(size: int = 2048) -> float:
    a, b = np.random.default_rng(0).random((2, size, size), dtype=np.float32)
    out = np.empty_like(a)
    wall, _ = timed(lambda: np.matmul(a, b, out=out), repeats=5)
    return 2.0 * size ** 3 / wall / 1e9


def gemm_bound_epoch(samples: int, repeats: int) -> tuple[float, float]:
    """Seconds for one epoch's batch-64 GEMMs alone: the matrix-multiply bound."""
    rng = np.random.default_rng(0)
    weights = [rng.random((n_in, n_out), dtype=np.float32) for n_in, n_out in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:])]
    activations = [rng.random((BATCH_SIZE, n), dtype=np.float32) for n in LAYER_SIZES]
    # Input gradients of the hidden layers only: the first layer's inputs need none.
    deltas = {layer: np.empty((BATCH_SIZE, LAYER_SIZES[layer]), np.float32) for layer in range(1, len(LAYER_SIZES) - 1)}
    gradients = [np.empty_like(w) for w in weights]
    batches = -(-samples // BATCH_SIZE)

    def epoch():
        for _ in range(batches):
            for layer, weight in enumerate(weights):
                np.matmul(activations[layer], weight, out=activations[layer + 1])
            for layer in reversed(range(len(weights))):
                np.matmul(activations[layer].T, activations[layer + 1], out=gradients[layer])
                if layer > 0:
                    np.matmul(activations[layer + 1], weights[layer].T, out=deltas[layer])

    return timed(epoch, repeats)


def gather_epoch(x, repeats: int) -> tuple[float, float]:
    """Seconds to copy one epoch's shuffled batches out of x, as NumpyMLP.fit does before each step."""
    order = np.random.default_rng(1).permutation(len(x))
    buffer = np.empty((BATCH_SIZE, x.shape[1]), x.dtype)

    def epoch():
        for begin in range(0, len(x), BATCH_SIZE):
            rows = order[begin:begin + BATCH_SIZE]
            x.take(rows, 0, out=buffer[:len(rows)], mode="clip")

    return timed(epoch, repeats)


def update_epoch(samples: int, repeats: int) -> tuple[float, float]:
    """Seconds for one epoch's SGD updates of all parameters, as NumpyMLP.fit applies them."""
    model = NumpyMLP(LAYER_SIZES, seed=0)
    optimizer, gradient = SGD(LEARNING_RATE), np.zeros_like(model.parameters)
    batches = -(-samples // BATCH_SIZE)

    def epoch():
        for _ in range(batches):
            optimizer.apply([model.parameters], [gradient], overwrite_gradients=True)

    return timed(epoch, repeats)


def epoch_times(fit, epochs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of the epochs after the first; ``fit(epochs, on_epoch_begin, on_epoch_end)``."""
    walls, cpus, marks = [], [], {}

    def on_epoch_begin():
        marks["wall"], marks["cpu"] = time.perf_counter(), time.process_time()

    def on_epoch_end():
        walls.append(time.perf_counter() - marks["wall"])
        cpus.append(time.process_time() - marks["cpu"])

    fit(epochs + 1, on_epoch_begin, on_epoch_end)
    return statistics.median(walls[1:]), statistics.median(cpus[1:])


def numpy_fit(x, y, fast: bool):
    """The `numpy` variant (the readable forward()/backward() loop) or `numpy_fast` (the fused loop)."""
    def fit(epochs, on_epoch_begin, on_epoch_end):
        model = NumpyMLP(LAYER_SIZES, seed=0)
        model.fast_path = fast
        # NumpyMLP reports an epoch's end; the next epoch begins right after it.
        on_epoch_begin()
        model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
                  on_epoch_end=lambda seconds, logs: (on_epoch_end(), on_epoch_begin()))
    return fit


def keras_fit(x, y, fast: bool):
    import keras

    from experiments.mlp_mnist import FAST_STEPS_PER_EXECUTION, Config, build_keras_model

    class Timer(keras.callbacks.Callback):
        def __init__(self, begin, end):
            super().__init__()
            self.begin, self.end = begin, end

        def on_epoch_begin(self, epoch, logs=None):
            self.begin()

        def on_epoch_end(self, epoch, logs=None):
            self.end()

    def fit(epochs, on_epoch_begin, on_epoch_end):
        keras.utils.set_random_seed(0)
        config = (Config(jit_compile=True, steps_per_execution=FAST_STEPS_PER_EXECUTION) if fast else Config())
        model = build_keras_model(LAYER_SIZES, config)
        numpy_model = NumpyMLP(LAYER_SIZES, seed=0)
        model.set_weights(numpy_model.get_weights())
        model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, shuffle=True, verbose=0,
                  callbacks=[Timer(on_epoch_begin, on_epoch_end)])
    return fit


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="directory holding mnist.npz (default: $DLBENCH_DATA_DIR)")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs after the first (default 5)")
    parser.add_argument("--threads", default="1,2", help="BLAS thread counts to try for NumPy (default 1,2)")
    parser.add_argument("--no-keras", action="store_true", help="time NumPy and the bound only")
    arguments = parser.parse_args(argv)
    if arguments.epochs < 2:
        parser.error("--epochs must be >= 2 for a median of steady-state epochs")
    thread_counts = [int(t) for t in arguments.threads.split(",") if t]

    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("load before:", uptime())
    blas = next((pool for pool in threadpool_info() if pool["user_api"] == "blas"), {})
    print(f"numpy {np.__version__}, BLAS {blas.get('internal_api', '?')} {blas.get('version', '')} "
          f"({blas.get('architecture', '?')}), {os.cpu_count()} CPUs, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    x, y, source = load_training_images(arguments.data_dir)
    forward, backward = flops_per_epoch(len(x))
    total = forward + backward
    print(f"data: {source}, {len(x)} training images, batch {BATCH_SIZE}; FLOPs per epoch: forward "
          f"{forward / 1e9:.2f} G + backward {backward / 1e9:.2f} G = {total / 1e9:.2f} G")

    rows = []  # (name, threads, wall, cpu)
    peaks, bounds, parts = {}, {}, {}
    for threads in thread_counts:
        with threadpool_limits(limits=threads, user_api="blas"):
            peaks[threads] = matmul_peak_gflops()
            bounds[threads] = gemm_bound_epoch(len(x), repeats=arguments.epochs)
            rows.append(("matmul bound (batch-64 GEMMs)", threads, *bounds[threads]))
            rows.append(("numpy_fast NumpyMLP.fit", threads,
                         *epoch_times(numpy_fit(x, y, fast=True), arguments.epochs)))
            rows.append(("numpy NumpyMLP.fit (readable loop)", threads,
                         *epoch_times(numpy_fit(x, y, fast=False), arguments.epochs)))
            # The parts of NumPy's epoch that are not matrix products, each timed alone.
            parts[threads] = {"gather": gather_epoch(x, arguments.epochs)[0],
                              "update": update_epoch(len(x), arguments.epochs)[0]}
    if not arguments.no_keras:
        # TensorFlow uses its own thread pools (default: all cores), not the BLAS limit above.
        rows.append(("keras fit", "tf", *epoch_times(keras_fit(x, y, fast=False), arguments.epochs)))
        rows.append(("keras_fast fit (XLA, steps/exec)", "tf", *epoch_times(keras_fit(x, y, fast=True), arguments.epochs)))

    best_bound = min(wall for wall, _ in bounds.values())
    numpy_rows = [row for row in rows if row[0].startswith("numpy")]
    best_numpy = min(numpy_rows, key=lambda row: row[2])
    print()
    print("peak float32 matmul (2048x2048): " + ", ".join(
        f"{peaks[t]:.1f} GFLOP/s with {t} thread{'s' * (t > 1)}" for t in thread_counts))
    print("an epoch's FLOPs at that peak (an ideal: products of batch-64 shapes never reach it): " + ", ".join(
        f"{total / peaks[t] / 1e9:.3f} s with {t} thread{'s' * (t > 1)}" for t in thread_counts))
    print(f"bound used below: the fastest 'matmul bound' row, {best_bound:.3f} s/epoch = this epoch's "
          f"matmul FLOPs at the throughput measured for its own batch-64 shapes")
    header = f"{'variant':36s} {'threads':>7s} {'s/epoch':>8s} {'cpu s':>7s} {'GFLOP/s':>8s} {'% peak':>7s} {'x bound':>8s} {'x numpy':>8s}"
    print(header)
    print("-" * len(header))
    for name, threads, wall, cpu in rows:
        peak = peaks.get(threads, max(peaks.values()))
        gflops = total / wall / 1e9
        print(f"{name:36s} {threads!s:>7s} {wall:8.3f} {cpu:7.3f} {gflops:8.1f} {100 * gflops / peak:6.1f}% "
              f"{wall / best_bound:8.2f} {wall / best_numpy[2]:8.2f}")
    print(f"\nfastest NumPy: {best_numpy[1]} BLAS thread(s), {best_numpy[2] / best_bound:.2f}x the matrix-multiply bound")
    threads, numpy_wall = best_numpy[1], best_numpy[2]
    gemm, gather, update = bounds[threads][0], parts[threads]["gather"], parts[threads]["update"]
    rest = numpy_wall - gemm - gather - update
    print(f"where its {numpy_wall:.3f} s go (parts timed alone with {threads} BLAS thread(s); the rest by difference):")
    for label, seconds in [("batch-64 matrix products (the bound)", gemm),
                           ("gathering the shuffled batches", gather),
                           ("SGD updates of all parameters", update),
                           ("the rest: element-wise calls, Python, cache misses", rest)]:
        print(f"  {label:52s} {seconds:6.3f} s  {100 * seconds / numpy_wall:5.1f} %")
    # On a shared machine other processes stretch wall times at random (wall >> CPU s); the ratio of
    # CPU seconds with the same thread count is then the steadier figure (same bound, same GEMMs).
    for name, threads, wall, cpu in numpy_rows:
        print(f"  in CPU seconds, {threads} BLAS thread(s): {cpu / bounds[threads][1]:.2f}x the bound's CPU seconds")
    print("load after:", uptime())
    return 0


if __name__ == "__main__":
    sys.exit(main())
