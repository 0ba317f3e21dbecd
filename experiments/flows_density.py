"""
Density estimation with normalizing flows (docs/topics/flows_density.md): a bijection F from data space to a
latent space where the points follow N(0, I); by the change of variables
    log p(x) = log q(F(x)) + log |det Jac_F(x)|,
summed over the flow's layers. F is the normalizing direction (density estimation), F^-1 the
generative one (sampling). Training minimises the negative log-likelihood (NLL), i.e. KL(P* || P).

Headline: the test NLL, lower is better: nats per sample on the standardised scale for the 1D and
2D densities (the row also gives the original scale, + sum log sigma of the standardisation), bits
per dimension for MNIST.

Data drawn from seeds (recorded as generated): training points from the run's seed; validation
(1,000) and test (10,000) points from two fixed streams of their own, the same for every run, so no
two splits ever share a point and every run is judged on the same test points. Each generator also
knows its exact density, which gives the limit no model can pass: the data's entropy (Monte Carlo,
recorded as `data_entropy`) and the true density's NLL on the same test points (`test_nll_true_density`).
- 1D `two_bumps`: 0.5 N(-2, 0.6^2) + 0.5 N(1.5, 0.4^2), the course's picture.
- 2D `two_moons`: sklearn's make_moons recipe (two half circles, Gaussian noise 0.05 on both
  coordinates), the arc position drawn uniformly rather than on a grid so that the data have a
  density; `circles` (radii 1 and 0.5, noise 0.05), `eight_gaussians` (radius 2, sigma 0.1),
  `checkerboard` (uniform on the 8 dark squares of a 4x4 board on [-2, 2]^2). Set with `--set data=`.
- `mnist`: the digits dequantised (x + u) / 256, u ~ U(0, 1), new noise every epoch, mapped to logit
  space by the flow's first (fixed) bijection, whose log-determinant counts in bits per dimension.

Flows, chosen by the config's `flow` (what a variant is: --set refuses it):
- `monotone_1d`: a stack of increasing maps f(x) = a x + b + sum_k c_k tanh(d_k (x - e_k)) with a,
  c_k, d_k > 0 (softplus): f' > 0 in closed form, F^-1 by bisection (in float64).
- `coupling_2d` / `coupling_image`: RealNVP affine couplings. A mask keeps half of the coordinates,
  x_kept; the others become x * exp(s(x_kept)) + t(x_kept), with s = tanh(.) x a factor bounding the
  scale; log det = sum s. s and t are dense networks. Between couplings the masks alternate, or a
  fixed random rotation (`mixing=rotate`, log det 0) mixes the coordinates; checkerboard masks for
  the images.

Variants: `realnvp_1d`; `realnvp`, the keras-io recipe (examples/generative/real_nvp.py: 6
couplings, s and t nets 4 x 256 with L2 0.01, Adam 1e-4, batch 256, 300 epochs, 3,000 points);
`realnvp_best`, a better 2D recipe within the same budget; `realnvp_mnist`, dense couplings on
MNIST (not the multi-scale convolutional RealNVP of the paper).

Honesty checks in every 1D/2D row: the learned density's integral over a fine grid (1 +- 0.02
expected), and a sample-quality figure: the mean log-density of the flow's samples under a KDE of
test points, beside the same for held-out real points (`kde_gap`, samples worse when > 0).
Artifacts: for 1D the course's figure (data and learned density, the map F, the latent histogram)
and the learning process as a strip of epochs; for 2D the data, the learned density as a heat map,
samples drawn through F^-1 and the latent points F(x); for MNIST a grid of samples.

Measured figures are not typed here: `dlbench compare flows_density` and docs/measurements.md generate
them from the run records, with the machine, n, spread and contention of each row.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from dlbench.experiment import Experiment, Metric, Variant

DISTRIBUTIONS_1D = ("two_bumps",)
DISTRIBUTIONS_2D = ("two_moons", "circles", "eight_gaussians", "checkerboard")
IMAGE_DATASETS = ("mnist",)
FLOWS = {"monotone_1d": DISTRIBUTIONS_1D, "coupling_2d": DISTRIBUTIONS_2D, "coupling_image": IMAGE_DATASETS}
# The validation and test streams: fixed, so every run is judged on the same points, and apart from
# every training stream (those are (seed, 0)).
VALIDATION_STREAM, TEST_STREAM = (20_261_202, 1), (20_261_202, 2)
ENTROPY_SAMPLES = 100_000  # Monte Carlo standard error about 0.003 nats.
GRID_POINTS = 300  # Per axis, for the 2D heat map and the integral of the learned density.
KDE_POINTS = 2_000  # Flow samples and held-out real points scored under the KDE of other test points.
LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class Config:
    flow: Literal["monotone_1d", "coupling_2d", "coupling_image"] = "coupling_2d"  # See the docstring.
    data: Literal["two_bumps", "two_moons", "circles", "eight_gaussians", "checkerboard", "mnist"] = "two_moons"
    n_train: int = 3_000  # Generated training points (MNIST: all 55,000 training images not held out).
    n_validation: int = 1_000  # Generated validation points (MNIST: training images held out).
    n_test: int = 10_000  # Generated test points (MNIST: the 10,000 test images).
    noise: float = 0.05  # two_moons and circles: the standard deviation of the Gaussian noise.
    layers: int = 6  # Couplings (coupling flows) or monotone maps (monotone_1d).
    hidden_units: int = 256  # Width of the s and t networks; monotone_1d: tanh terms per map.
    hidden_layers: int = 4  # Depth of the s and t networks.
    # alternate: the masks swap; rotate: a fixed random rotation between couplings (2D only).
    mixing: Literal["alternate", "rotate"] = "alternate"
    learned_scale: bool = False  # s = tanh(.) x a learned factor per coordinate (else x 1, as keras-io).
    # L2 penalty on the kernels of s and t. keras-io declares 0.01, but its train_step minimises the
    # NLL alone and never adds the penalty, so the recipe as it trains has none.
    l2: float = 0.0
    learning_rate: float = 1e-4
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: decays to 0 over the run.
    clip_norm: float = 0.0  # Gradient norm clipping (0: none).
    batch_size: int = 256
    epochs: int = 300
    logit_alpha: float = 0.05  # mnist: pixels squeezed into [alpha, 1 - alpha] before the logit.
    sample_temperature: float = 0.7  # mnist: a second grid drawn from N(0, T^2 I), sharper digits.
    jit_compile: bool = True  # XLA: the small dense nets' epochs take half the time on CPU.

    def validate(self):
        if self.flow not in FLOWS:
            raise ValueError(f"flow must be one of {', '.join(FLOWS)}")
        if self.data not in FLOWS[self.flow]:
            raise ValueError(f"flow {self.flow} takes data {', '.join(FLOWS[self.flow])}, not '{self.data}'")
        if min(self.n_train, self.n_validation, self.n_test, self.layers, self.hidden_units, self.hidden_layers,
               self.batch_size, self.epochs) < 1:
            raise ValueError("n_train, n_validation, n_test, layers, hidden_units, hidden_layers, batch_size "
                             "and epochs must be >= 1")
        if self.mixing not in ("alternate", "rotate") or self.schedule not in ("constant", "cosine"):
            raise ValueError("mixing must be alternate or rotate, schedule constant or cosine")
        if self.mixing == "rotate" and self.flow != "coupling_2d":
            raise ValueError("mixing=rotate is for the 2D coupling flow (images use checkerboard masks)")
        if self.learning_rate <= 0 or self.l2 < 0 or self.clip_norm < 0 or self.noise <= 0:
            raise ValueError("learning_rate and noise must be > 0, l2 and clip_norm >= 0")
        if not 0 < self.logit_alpha < 0.5 or self.sample_temperature <= 0:
            raise ValueError("logit_alpha must be in (0, 0.5), sample_temperature > 0")


# ------------------------------------------------------------------------------------ Prepare the data
# Each distribution draws points from a numpy Generator and knows its exact log-density.


def _normal_log_density(squared_distance, sigma: float, dimensions: int):
    return -0.5 * squared_distance / sigma**2 - dimensions * (math.log(sigma) + 0.5 * LOG_2PI)


def _logsumexp(values, axis):
    peak = np.max(values, axis=axis, keepdims=True)
    return np.squeeze(peak, axis) + np.log(np.sum(np.exp(values - peak), axis=axis))


def _mixture_log_density(points, means, sigmas, weights):
    points = np.asarray(points, np.float64).reshape(len(points), -1)
    means = np.asarray(means, np.float64).reshape(len(weights), -1)
    squared = ((points[:, None, :] - means[None]) ** 2).sum(-1)
    terms = [np.log(weight) + _normal_log_density(squared[:, k], sigma, points.shape[1])
             for k, (sigma, weight) in enumerate(zip(sigmas, weights))]
    return _logsumexp(np.stack(terms, axis=1), axis=1)


# Arcs (moons, circles): centre (x, y), radius, angles [start, end), the arc's share of the points.
MOON_ARCS = (((0.0, 0.0), 1.0, (0.0, math.pi), 0.5), ((1.0, 0.5), 1.0, (math.pi, 2 * math.pi), 0.5))
CIRCLE_ARCS = (((0.0, 0.0), 1.0, (0.0, 2 * math.pi), 0.5), ((0.0, 0.0), 0.5, (0.0, 2 * math.pi), 0.5))


def _arcs_sample(arcs, n, noise, rng):
    which = rng.choice(len(arcs), size=n, p=[arc[3] for arc in arcs])
    points = np.empty((n, 2))
    for index, ((cx, cy), radius, (start, end), _) in enumerate(arcs):
        chosen = which == index
        angle = rng.uniform(start, end, chosen.sum())
        points[chosen] = np.stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)], axis=1)
    return points + noise * rng.standard_normal((n, 2))


def _arcs_log_density(points, arcs, noise, steps=400, chunk=2_000):
    """The noisy arcs' density, integrated numerically over the arc: the midpoint rule with a step
    (0.008 on the unit arc, 0.004 on the inner circle) several times finer than the noise (0.05)."""
    points = np.asarray(points, np.float64)
    result = np.empty(len(points))
    centres, log_weights = [], []
    for (cx, cy), radius, (start, end), share in arcs:
        angle = start + (np.arange(steps) + 0.5) * (end - start) / steps
        centres.append(np.stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)], axis=1))
        log_weights.append(np.full(steps, math.log(share / steps)))
    centres, log_weights = np.concatenate(centres), np.concatenate(log_weights)
    for first in range(0, len(points), chunk):
        block = points[first:first + chunk]
        squared = ((block[:, None, :] - centres[None]) ** 2).sum(-1)
        result[first:first + chunk] = _logsumexp(log_weights + _normal_log_density(squared, noise, 2), axis=1)
    return result


EIGHT_MEANS = np.array([(2 * math.cos(k * math.pi / 4), 2 * math.sin(k * math.pi / 4)) for k in range(8)])
BUMP_MEANS, BUMP_SIGMAS, BUMP_WEIGHTS = (-2.0, 1.5), (0.6, 0.4), (0.5, 0.5)


def sample_distribution(name: str, n: int, rng, noise: float = 0.05) -> np.ndarray:
    """n points of a named distribution, shape (n, dimensions)."""
    if name == "two_bumps":
        which = rng.choice(2, size=n, p=BUMP_WEIGHTS)
        return (np.take(BUMP_MEANS, which) + np.take(BUMP_SIGMAS, which) * rng.standard_normal(n))[:, None]
    if name == "two_moons":
        return _arcs_sample(MOON_ARCS, n, noise, rng)
    if name == "circles":
        return _arcs_sample(CIRCLE_ARCS, n, noise, rng)
    if name == "eight_gaussians":
        return EIGHT_MEANS[rng.integers(0, 8, n)] + 0.1 * rng.standard_normal((n, 2))
    if name == "checkerboard":
        # Column c in 0..3, row r of the same parity as c: the 8 dark squares of a 4 x 4 board.
        column = rng.integers(0, 4, n)
        row = 2 * rng.integers(0, 2, n) + column % 2
        return np.stack([column + rng.random(n), row + rng.random(n)], axis=1) - 2.0
    raise ValueError(f"unknown distribution '{name}'")


def log_density(name: str, points, noise: float = 0.05) -> np.ndarray:
    """The exact log-density of a named distribution at points (n, dimensions)."""
    points = np.asarray(points, np.float64)
    if name == "two_bumps":
        return _mixture_log_density(points, BUMP_MEANS, BUMP_SIGMAS, BUMP_WEIGHTS)
    if name == "two_moons":
        return _arcs_log_density(points, MOON_ARCS, noise)
    if name == "circles":
        return _arcs_log_density(points, CIRCLE_ARCS, noise)
    if name == "eight_gaussians":
        return _mixture_log_density(points, EIGHT_MEANS, [0.1] * 8, [1 / 8] * 8)
    if name == "checkerboard":
        cell = np.floor(points + 2.0)
        inside = np.all((cell >= 0) & (cell <= 3), axis=1) & ((cell[:, 0] + cell[:, 1]) % 2 == 0)
        return np.where(inside, -math.log(8.0), -np.inf)
    raise ValueError(f"unknown distribution '{name}'")


def stream(seed_parts) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(seed_parts)))


@dataclasses.dataclass
class Splits:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    mean: np.ndarray  # The training split's: every split is standardised with them.
    std: np.ndarray

    @property
    def log_std_sum(self) -> float:
        """NLL on the original scale = NLL on the standardised scale + this."""
        return float(np.log(self.std).sum())


def generate_splits(config: Config, seed: int) -> Splits:
    """Train from the run's seed, validation and test from their own fixed streams, standardised on train."""
    draw = lambda parts, n: sample_distribution(config.data, n, stream(parts), config.noise)  # noqa: E731
    train, validation, test = draw((seed, 0), config.n_train), draw(VALIDATION_STREAM, config.n_validation), \
        draw(TEST_STREAM, config.n_test)
    mean, std = train.mean(axis=0), train.std(axis=0)
    scale = lambda points: (points - mean) / std  # noqa: E731
    return Splits(scale(train), scale(validation), scale(test), mean, std)


def data_entropy(config: Config, splits: Splits) -> float:
    """-E log p(x) of the data on the standardised scale, by Monte Carlo (its own stream)."""
    points = sample_distribution(config.data, ENTROPY_SAMPLES, stream((20_261_202, 3)), config.noise)
    return float(-log_density(config.data, points, config.noise).mean() - splits.log_std_sum)


def dequantize(pixels, rng) -> np.ndarray:
    """Integer pixels 0..255 to (x + u) / 256 in [0, 1), u ~ U(0, 1): a continuous density to model."""
    pixels = np.asarray(pixels, np.float32).reshape(len(pixels), -1)
    return (pixels + rng.random(pixels.shape, dtype=np.float32)) / 256.0


def image_splits(dataset, config: Config, seed: int):
    """Training images (as integers: fresh dequantisation noise each epoch), validation images held out
    of the training set, and the test images, both dequantised once with fixed noise."""
    order = np.random.default_rng(seed).permutation(len(dataset.x_train))
    n_validation = min(config.n_validation, len(order) // 10)
    train = dataset.x_train[order[n_validation:]][:config.n_train].reshape(-1, 784)
    validation = dequantize(dataset.x_train[order[:n_validation]], stream(VALIDATION_STREAM))
    test = dequantize(dataset.x_test[:config.n_test], stream(TEST_STREAM))
    return train, validation, test


# ----------------------------------------------------------------------------------- Build the model


def build_flow(config: Config, dimensions: int, dtype: str | None = None):
    """The flow as a Keras model whose output is each point's NLL (nats; bits/dim for images).
    float64 for the 1D flow (its bisection inverse then reaches 1e-10), float32 otherwise (tests
    build float64 ones for finite differences)."""
    import keras
    from keras import ops

    dtype = dtype or ("float64" if config.flow == "monotone_1d" else "float32")

    class MonotoneMap(keras.layers.Layer):
        """f(x) = a x + b + sum_k c_k tanh(d_k (x - e_k)), a, c, d > 0: increasing, onto R."""

        def __init__(self, terms, **kwargs):
            super().__init__(dtype=dtype, **kwargs)
            self.terms = terms

        def build(self, input_shape):
            normal = keras.initializers.RandomNormal(stddev=1.0)
            self.a = self.add_weight(shape=(), initializer="zeros", name="a")
            self.b = self.add_weight(shape=(), initializer="zeros", name="b")
            self.c = self.add_weight(shape=(self.terms,), initializer=keras.initializers.Constant(-2.0), name="c")
            self.d = self.add_weight(shape=(self.terms,), initializer="zeros", name="d")
            self.e = self.add_weight(shape=(self.terms,), initializer=normal, name="e")

        def _parts(self):
            return (ops.softplus(self.a) + 1e-3, ops.softplus(self.c), ops.softplus(self.d) + 1e-3)

        def forward(self, x):
            a, c, d = self._parts()
            inner = ops.tanh(d * (x - self.e))  # (n, 1) against (terms,): every term per point.
            y = a * x + self.b + ops.sum(c * inner, axis=-1, keepdims=True)
            slope = a + ops.sum(c * d * (1 - inner**2), axis=-1, keepdims=True)
            return y, ops.sum(ops.log(slope), axis=-1)

        def inverse(self, y):
            a, c, d = self._parts()
            reach = ops.sum(c)  # |f(x) - a x - b| <= sum c: the root lies in this bracket.
            low, high = (y - self.b - reach) / a - 1.0, (y - self.b + reach) / a + 1.0
            for _ in range(80):  # Bisection: the bracket halves 80 times, far below float64 resolution.
                middle = (low + high) / 2
                value, _ = self.forward(middle)
                below = value < y
                low, high = ops.where(below, middle, low), ops.where(below, high, middle)
            return (low + high) / 2

    class AffineCoupling(keras.layers.Layer):
        """Kept coordinates x * mask pass through; the others become x exp(s) + t, s and t functions of
        the kept ones; log det = sum s. s = tanh(.) x factor keeps each step's scale bounded."""

        def __init__(self, mask, **kwargs):
            super().__init__(dtype=dtype, **kwargs)
            self.mask = np.asarray(mask, dtype)
            regularizer = keras.regularizers.L2(config.l2) if config.l2 else None

            def network(activation, name):
                layers = [keras.layers.Dense(config.hidden_units, activation="relu", kernel_regularizer=regularizer,
                                             dtype=dtype) for _ in range(config.hidden_layers)]
                return keras.Sequential([*layers, keras.layers.Dense(len(self.mask), activation=activation,
                                                                     kernel_regularizer=regularizer, dtype=dtype)],
                                        name=name)

            self.scale_network, self.shift_network = network("tanh", "s"), network("linear", "t")

        def build(self, input_shape):
            self.scale_network.build(input_shape)
            self.shift_network.build(input_shape)
            self.factor = self.add_weight(shape=(len(self.mask),), initializer="ones", name="scale_factor",
                                          trainable=config.learned_scale)

        def _scale_and_shift(self, kept):
            free = 1.0 - self.mask
            return self.scale_network(kept) * self.factor * free, self.shift_network(kept) * free

        def forward(self, x):
            kept = x * self.mask
            s, t = self._scale_and_shift(kept)
            return kept + (1.0 - self.mask) * (x * ops.exp(s) + t), ops.sum(s, axis=-1)

        def inverse(self, z):
            kept = z * self.mask
            s, t = self._scale_and_shift(kept)
            return kept + (1.0 - self.mask) * ((z - t) * ops.exp(-s))

    class Rotation(keras.layers.Layer):
        """A fixed rotation of the plane (|det| = 1): the next coupling sees mixed coordinates."""

        def __init__(self, angle, **kwargs):
            super().__init__(dtype=dtype, **kwargs)
            self.matrix = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype)

        def forward(self, x):
            return ops.matmul(x, self.matrix), ops.zeros_like(x[:, 0])

        def inverse(self, z):
            return ops.matmul(z, self.matrix.T)

    class Logit(keras.layers.Layer):
        """Pixels y in [0, 1] -> logit(alpha + (1 - 2 alpha) y): unbounded coordinates for the couplings."""

        def forward(self, y):
            squeezed = config.logit_alpha + (1 - 2 * config.logit_alpha) * y
            slope = (1 - 2 * config.logit_alpha) / (squeezed * (1 - squeezed))
            return ops.log(squeezed) - ops.log1p(-squeezed), ops.sum(ops.log(slope), axis=-1)

        def inverse(self, logits):
            return (ops.sigmoid(logits) - config.logit_alpha) / (1 - 2 * config.logit_alpha)

    class Flow(keras.Model):
        """F = the bijections in order. call(x) is each point's NLL; forward(x) gives (F(x), log det);
        inverse(z) is F^-1(z); log_prob(x) = log N(F(x); 0, I) + log det."""

        def __init__(self, bijections, nll_scale=1.0, nll_offset=0.0, **kwargs):
            super().__init__(dtype=dtype, **kwargs)
            self.bijections = bijections
            self.dimensions = dimensions
            # Images: nats per image on [0, 1)^784 -> bits per dimension on the 0..256 pixel scale.
            self.nll_scale, self.nll_offset = nll_scale, nll_offset

        def forward(self, x):
            log_det = ops.zeros_like(x[:, 0])
            for bijection in self.bijections:
                x, step = bijection.forward(x)
                log_det = log_det + step
            return x, log_det

        def inverse(self, z):
            for bijection in reversed(self.bijections):
                z = bijection.inverse(z)
            return z

        def log_prob(self, x):
            z, log_det = self.forward(x)
            return -0.5 * ops.sum(z**2, axis=-1) - 0.5 * self.dimensions * LOG_2PI + log_det

        def call(self, x):
            return (-self.log_prob(x) + self.nll_offset) * self.nll_scale

    if config.flow == "monotone_1d":
        bijections = [MonotoneMap(config.hidden_units, name=f"monotone_{index}") for index in range(config.layers)]
        flow = Flow(bijections, name="monotone_flow")
    elif config.flow == "coupling_2d":
        bijections = []
        angles = np.random.default_rng(0).uniform(0, math.pi, config.layers)  # Fixed: part of the architecture.
        for index in range(config.layers):
            if config.mixing == "rotate" and index > 0:
                bijections.append(Rotation(angles[index], name=f"rotation_{index}"))
            mask = [1.0, 0.0] if config.mixing == "rotate" or index % 2 == 0 else [0.0, 1.0]
            bijections.append(AffineCoupling(mask, name=f"coupling_{index}"))
        flow = Flow(bijections, name="realnvp_2d")
    else:  # coupling_image: checkerboard masks and their complements, alternating.
        rows, columns = np.indices((28, 28))
        checkerboard = ((rows + columns) % 2).reshape(-1).astype(np.float32)
        bijections = [Logit(dtype=dtype, name="logit")]
        bijections += [AffineCoupling(checkerboard if index % 2 == 0 else 1 - checkerboard, name=f"coupling_{index}")
                       for index in range(config.layers)]
        # NLL of the pixels on 0..256: + D log 256; then nats -> bits, per dimension.
        flow = Flow(bijections, nll_scale=1 / (dimensions * math.log(2)), nll_offset=dimensions * math.log(256),
                    name="realnvp_mnist")
    for bijection in bijections:  # Their methods are called directly (forward, inverse), not through __call__.
        bijection.build((None, dimensions))
    flow(np.zeros((1, dimensions), dtype))
    return flow


# ------------------------------------------------------------------------------------------------ Train


def nll(y_true, y_pred):
    """The model's output is each point's NLL: loss and metric are its mean (the loss adds the L2 penalty)."""
    return y_pred


def compile_flow(flow, config: Config, steps_per_epoch: int):
    import keras

    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch)
    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=config.clip_norm or None)
    flow.compile(optimizer=optimizer, loss=nll, metrics=[nll], jit_compile=config.jit_compile)


def image_pipeline(images, config: Config, seed: int):
    """Batches of training images with fresh dequantisation noise every epoch."""
    import tensorflow as tf

    def dequantize_batch(pixels):
        values = (tf.cast(pixels, tf.float32) + tf.random.uniform(tf.shape(pixels), seed=seed)) / 256.0
        return values, tf.zeros(tf.shape(pixels)[:1])

    return (tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(config.batch_size).map(dequantize_batch, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def snapshot_callback(flow, grid, epochs, store):
    """The learned density on a grid after the chosen epochs: the course's learning process, as a strip."""
    import keras

    class DensitySnapshots(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in epochs:
                store[epoch + 1] = density_on(flow, grid)

    return DensitySnapshots()


def snapshot_epochs(total: int, count: int = 6) -> tuple[int, ...]:
    """About `count` epochs spaced geometrically from the first to the last."""
    return tuple(sorted({int(round(total ** (index / (count - 1)))) for index in range(count)}))


# --------------------------------------------------------------------------------------------- Evaluate


def mean_nll(flow, points, batch_size: int = 4_096) -> float:
    return float(np.mean(flow.predict(points, batch_size=batch_size, verbose=0)))


def density_on(flow, points) -> np.ndarray:
    """The learned density at points (the flow's output is the NLL on the standardised scale)."""
    return np.exp(-np.asarray(flow.predict(points, batch_size=8_192, verbose=0), np.float64))


def grid_1d(splits: Splits, points: int = 1_000):
    edge = np.abs(splits.test).max() + 1.0
    return np.linspace(-edge, edge, points)[:, None]


def grid_2d(splits: Splits, points: int = GRID_POINTS):
    """A square grid over the test data plus a margin: coordinates (points^2, 2), axis values, cell area."""
    edge = float(np.abs(splits.test).max()) + 1.0
    axis = np.linspace(-edge, edge, points)
    xs, ys = np.meshgrid(axis, axis)
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32), axis, (axis[1] - axis[0]) ** 2


def kde_log_density(reference, points, chunk: int = 1_000) -> np.ndarray:
    """A Gaussian KDE of reference points (Scott's bandwidth per coordinate), evaluated at points."""
    reference, points = np.asarray(reference, np.float64), np.asarray(points, np.float64)
    n, dimensions = reference.shape
    bandwidth = reference.std(axis=0) * n ** (-1 / (dimensions + 4))
    result = np.empty(len(points))
    for first in range(0, len(points), chunk):
        scaled = (points[first:first + chunk, None, :] - reference[None]) / bandwidth
        log_kernel = -0.5 * (scaled**2).sum(-1) - np.log(bandwidth).sum() - 0.5 * dimensions * LOG_2PI
        result[first:first + chunk] = _logsumexp(log_kernel, axis=1) - math.log(n)
    return result


def draw_samples(flow, count: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    """x = F^-1(z), z ~ N(0, T^2 I)."""
    latent = temperature * np.random.default_rng(seed).standard_normal((count, flow.dimensions))
    return np.asarray(flow.inverse(latent.astype(np.float64 if flow.dtype == "float64" else np.float32)))


def latent_points(flow, points) -> np.ndarray:
    return np.asarray(flow.forward(np.asarray(points, np.float64 if flow.dtype == "float64" else np.float32))[0])


def sample_quality(flow, splits: Splits, seed: int) -> dict[str, float]:
    """Mean KDE log-density (KDE of test points) of the flow's samples and of other held-out real points:
    a good NLL with bad samples shows as a gap."""
    reference = splits.test[KDE_POINTS:]
    samples = draw_samples(flow, KDE_POINTS, seed)
    flow_score = float(np.mean(kde_log_density(reference, samples)))
    real_score = float(np.mean(kde_log_density(reference, splits.test[:KDE_POINTS])))
    return {"kde_logdensity_samples": flow_score, "kde_logdensity_real": real_score, "kde_gap": real_score - flow_score}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_1d_figure(flow, splits: Splits, config: Config, path) -> None:
    """The course's figure: data and learned density, the map F, the latent points against N(0, 1)."""
    plt = _pyplot()
    grid = grid_1d(splits)
    true_density = np.exp(log_density(config.data, grid * splits.std + splits.mean)) * splits.std.prod()
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.8))
    left.hist(splits.test[:, 0], bins=80, density=True, alpha=0.4, label="test data")
    left.plot(grid[:, 0], true_density, "k--", linewidth=1, label="true density")
    left.plot(grid[:, 0], density_on(flow, grid), "C3", label="learned density p(x)")
    left.set_xlabel("x (standardised)"), left.legend(fontsize=8), left.set_title("density")
    middle.plot(grid[:, 0], latent_points(flow, grid)[:, 0], "C2")
    middle.set_xlabel("x"), middle.set_ylabel("z = F(x)"), middle.set_title("the map F (normalizing direction)")
    latent = latent_points(flow, splits.test)[:, 0]
    right.hist(latent, bins=80, density=True, alpha=0.4, label="F(test data)")
    axis = np.linspace(-4, 4, 200)
    right.plot(axis, np.exp(-axis**2 / 2) / math.sqrt(2 * math.pi), "k--", label="N(0, 1)")
    right.set_xlabel("z"), right.legend(fontsize=8), right.set_title("latent space")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def save_learning_strip(snapshots: dict, grid, splits: Splits, path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(snapshots), figsize=(2.6 * len(snapshots), 2.4), sharey=True)
    for axis, (epoch, density) in zip(np.atleast_1d(axes), sorted(snapshots.items())):
        axis.hist(splits.train[:, 0], bins=60, density=True, alpha=0.3)
        axis.plot(grid[:, 0], density, "C3")
        axis.set_title(f"epoch {epoch}", fontsize=9), axis.set_xticks([])
    figure.suptitle("learning process: the learned density (red) against the training data", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def save_2d_figure(flow, splits: Splits, density, axis_values, seed: int, path) -> None:
    """Data, learned density (heat map), samples through F^-1, latent points F(x) against N(0, I)."""
    plt = _pyplot()
    shown = splits.test[:2_000]
    samples = draw_samples(flow, 2_000, seed + 1)
    latent = latent_points(flow, shown)
    edge = axis_values[-1]
    figure, axes = plt.subplots(1, 4, figsize=(15, 3.9))
    axes[0].scatter(*shown.T, s=2, alpha=0.5)
    axes[0].set_title("test data (standardised)")
    axes[1].imshow(density.reshape(len(axis_values), len(axis_values)), origin="lower", extent=(-edge, edge, -edge, edge),
                   cmap="viridis")
    axes[1].set_title("learned density p(x)")
    axes[2].scatter(*samples.T, s=2, alpha=0.5, color="C1")
    axes[2].set_title("samples x = F^-1(z)")
    circle = np.linspace(0, 2 * math.pi, 100)
    axes[3].scatter(*latent.T, s=2, alpha=0.5, color="C2", label="F(test data)")
    for radius in (1, 2, 3):
        axes[3].plot(radius * np.cos(circle), radius * np.sin(circle), "k--", linewidth=0.7)
    axes[3].set_title("latent F(x); circles: N(0, I) at 1, 2, 3 sigma", fontsize=9)
    for axis in axes[:3]:
        axis.set_xlim(-edge, edge), axis.set_ylim(-edge, edge)
    axes[3].set_xlim(-4.5, 4.5), axes[3].set_ylim(-4.5, 4.5)
    for axis in axes:
        axis.set_aspect("equal")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def save_digit_samples(flow, config: Config, seed: int, path) -> None:
    plt = _pyplot()
    temperatures = (1.0, config.sample_temperature)
    figure, axes = plt.subplots(1, 2, figsize=(10, 5.3))
    for axis, temperature in zip(axes, temperatures):
        digits = np.clip(draw_samples(flow, 64, seed, temperature), 0, 1).reshape(8, 8, 28, 28)
        axis.imshow(digits.transpose(0, 2, 1, 3).reshape(8 * 28, 8 * 28), cmap="gray", vmin=0, vmax=1)
        axis.set_title(f"samples, z ~ N(0, {temperature:g}^2 I)"), axis.set_xticks([]), axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


# -------------------------------------------------------------------------------------------------- Run


def run_images(config: Config, record) -> None:
    dataset = record.load_data(config.data)
    with record.phase("data"):
        train, validation, test = image_splits(dataset, config, record.seed)
        pipeline = image_pipeline(train, config, record.seed)
    record.set(n_train=len(train), n_validation=len(validation), n_test=len(test))
    record.expect_units(config.epochs, items_per_unit=len(train))
    with record.phase("build"):
        flow = build_flow(config, 784)
        compile_flow(flow, config, math.ceil(len(train) / config.batch_size))
    record.set(parameters=flow.count_params())
    with record.phase("train", training=True):
        flow.fit(pipeline, validation_data=(validation, np.zeros(len(validation))), epochs=config.epochs, shuffle=False,
                 verbose=0, callbacks=[record.keras_callback()])
    with record.phase("eval"):
        bits_per_dim = mean_nll(flow, test, batch_size=1_000)
        save_digit_samples(flow, config, record.seed, record.artifact_path("samples.png"))
    record.add_metrics(test_nll=bits_per_dim, test_bits_per_dim=bits_per_dim,
                       validation_bits_per_dim=mean_nll(flow, validation, batch_size=1_000))


def run(config: Config, variant: str, record) -> None:
    if config.flow == "coupling_image":
        return run_images(config, record)
    with record.phase("data"):
        splits = generate_splits(config, record.seed)
        entropy = data_entropy(config, splits)
        true_nll = float(-log_density(config.data, splits.test * splits.std + splits.mean, config.noise).mean()
                         - splits.log_std_sum)
    record.generated_data(config.data, f"{config.data} drawn from seeds: train (run seed, 0), validation "
                          f"{VALIDATION_STREAM}, test {TEST_STREAM}; standardised on the training split; NLL in nats per point")
    dimensions = splits.train.shape[1]
    record.set(n_train=len(splits.train), n_validation=len(splits.validation), n_test=len(splits.test))
    record.expect_units(config.epochs, items_per_unit=len(splits.train))

    with record.phase("build"):
        flow = build_flow(config, dimensions)
        compile_flow(flow, config, math.ceil(len(splits.train) / config.batch_size))
    record.set(parameters=flow.count_params())
    callbacks = [record.keras_callback()]
    snapshots, grid = {}, None
    if dimensions == 1:
        grid = grid_1d(splits)
        callbacks.insert(0, snapshot_callback(flow, grid, snapshot_epochs(config.epochs), snapshots))
    with record.phase("train", training=True):
        flow.fit(splits.train, np.zeros(len(splits.train)), validation_data=(splits.validation,
                 np.zeros(len(splits.validation))), epochs=config.epochs, batch_size=config.batch_size, shuffle=True,
                 verbose=0, callbacks=callbacks)

    with record.phase("eval"):
        nll_standardised = mean_nll(flow, splits.test)
        if dimensions == 1:
            cell = float(grid[1, 0] - grid[0, 0])
            integral = float(density_on(flow, grid).sum() * cell)
            save_1d_figure(flow, splits, config, record.artifact_path("density_1d.png"))
            save_learning_strip(snapshots, grid, splits, record.artifact_path("learning_process.png"))
        else:
            points, axis_values, cell = grid_2d(splits)
            density = density_on(flow, points)
            integral = float(density.sum() * cell)
            save_2d_figure(flow, splits, density, axis_values, record.seed, record.artifact_path("density_2d.png"))
        quality = sample_quality(flow, splits, record.seed)
    record.add_metrics(test_nll=nll_standardised, test_nll_original_scale=nll_standardised + splits.log_std_sum,
                       validation_nll=mean_nll(flow, splits.validation), data_entropy=entropy,
                       test_nll_true_density=true_nll, gap_to_entropy=nll_standardised - entropy,
                       density_integral=integral, **quality)


BASE = Config()
EXPERIMENT = Experiment(
    title="Density estimation with normalizing flows: a 1D picture, 2D densities (RealNVP), MNIST digits",
    dataset="generated 1D/2D densities; mnist",
    variants={
        "realnvp_1d": Variant("two bumps in 1D: 2 monotone maps of 8 tanh terms (float64), 200 epochs",
                              dataclasses.replace(BASE, flow="monotone_1d", data="two_bumps", layers=2, hidden_units=8,
                                                  hidden_layers=1, learning_rate=1e-2, epochs=200)),
        "realnvp": Variant("two moons, the keras-io recipe: 6 affine couplings, s/t nets 4x256, Adam 1e-4, "
                           "300 epochs on 3,000 points", BASE),
        # Ten times the generated data, thinner and more couplings with a fixed rotation between them
        # (every coupling then sees both coordinates mixed), a learned scale, Adam 1e-3 decayed to 0.
        "realnvp_best": Variant("two moons within the same 5-minute budget: 30,000 points, 10 couplings with "
                                "rotations, s/t nets 2x128, Adam 1e-3 cosine, 120 epochs",
                                dataclasses.replace(BASE, n_train=30_000, layers=10, hidden_units=128, hidden_layers=2,
                                                    mixing="rotate", learned_scale=True, learning_rate=1e-3,
                                                    schedule="cosine", batch_size=512, epochs=120)),
        "realnvp_mnist": Variant("MNIST in logit space: 8 dense affine couplings (checkerboard masks, s/t nets "
                                 "2x512), bits per dimension",
                                 dataclasses.replace(BASE, flow="coupling_image", data="mnist", n_train=55_000,
                                                     n_validation=5_000, layers=8, hidden_units=512, hidden_layers=2,
                                                     learned_scale=True, learning_rate=1e-3, clip_norm=100.0,
                                                     schedule="cosine", batch_size=128, epochs=13),
                                 slow_on_cpu="about 17 minutes on 2 cores"),
    },
    # The flow is what a variant is; the 2D data stay settable (--set data=circles), within the flow's kind.
    identity=("flow",),
    run=run,
    metric=Metric("test_nll", higher_is_better=False, validation_log="val_nll"),
    progress_unit="epoch",
    throughput_unit="points/s",
    shown_metrics=("gap_to_entropy", "density_integral", "kde_gap", "test_nll_original_scale"),
)
