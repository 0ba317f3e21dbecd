"""flows_density: the flows invert to 1e-5, their log-determinants match the Jacobian (automatic and
finite differences), an identity flow gives the closed-form normal NLL, the generators are seeded and
their densities integrate to 1, and a smoke run of every variant writes a complete record with pictures."""

import dataclasses
import math

import numpy as np
import pytest

from experiments import flows_density

TINY = {"realnvp_1d": dict(epochs=3, n_train=200, n_validation=100, n_test=3_000),
        "realnvp": dict(epochs=2, n_train=300, n_validation=100, n_test=3_000, hidden_units=16, hidden_layers=1,
                        jit_compile=False),
        "realnvp_best": dict(epochs=2, n_train=300, n_validation=100, n_test=3_000, hidden_units=16,
                             jit_compile=False),
        "realnvp_mnist": dict(epochs=1, n_train=200, n_validation=50, n_test=100, layers=2, hidden_units=16,
                              hidden_layers=1, batch_size=50, jit_compile=False)}
DIMENSIONS = {"monotone_1d": 1, "coupling_2d": 2, "coupling_image": 784}


def small_config(variant, **overrides):
    config = dataclasses.replace(flows_density.EXPERIMENT.variants[variant].config, **TINY[variant], **overrides)
    config.validate()
    return config


def randomised_flow(config, seed=0, dtype=None):
    """A flow whose weights are all perturbed: an untrained one is nearly the identity, which proves little."""
    flow = flows_density.build_flow(config, DIMENSIONS[config.flow], dtype)
    rng = np.random.default_rng(seed)
    for weight in flow.weights:
        value = np.asarray(weight.numpy())
        weight.assign((value + 0.1 * rng.standard_normal(value.shape)).astype(value.dtype))
    return flow


def inputs_for(flow, count, seed=1):
    rng = np.random.default_rng(seed)
    if flow.dimensions == 784:  # Dequantised pixels in (0, 1).
        return rng.uniform(0.01, 0.99, (count, 784)).astype(np.float32)
    return rng.standard_normal((count, flow.dimensions)).astype(flow.dtype)


@pytest.mark.parametrize("variant,overrides", [("realnvp_1d", {}), ("realnvp", {}), ("realnvp_best", {}),
                                               ("realnvp", {"learned_scale": True}), ("realnvp_mnist", {})])
def test_inverse_undoes_forward_to_1e5(variant, overrides):
    flow = randomised_flow(small_config(variant, **overrides))
    points = inputs_for(flow, 64)
    latent, _ = flow.forward(points)
    assert not np.allclose(np.asarray(latent), points, atol=1e-2)  # The flow does move the points.
    assert np.abs(np.asarray(flow.inverse(latent)) - points).max() < 1e-5
    if flow.dimensions == 784:
        return  # Random latent points map to pixels at the logit's edges, where float32 loses digits.
    # And the generative direction first: F(F^-1(z)) = z.
    z = np.random.default_rng(2).standard_normal((16, flow.dimensions)).astype(points.dtype)
    assert np.abs(np.asarray(flow.forward(flow.inverse(z))[0]) - z).max() < 1e-4


@pytest.mark.parametrize("variant", ["realnvp_1d", "realnvp", "realnvp_best"])
def test_log_determinant_matches_a_finite_difference_jacobian(variant):
    flow = randomised_flow(small_config(variant), dtype="float64")  # float64: central differences to ~1e-9.
    points = inputs_for(flow, 8)
    _, log_det = flow.forward(points)
    step = 1e-6
    columns = []
    for axis in range(flow.dimensions):  # Central differences, one coordinate at a time.
        shift = np.zeros_like(points)
        shift[:, axis] = step
        ahead = np.asarray(flow.forward(points + shift)[0])
        behind = np.asarray(flow.forward(points - shift)[0])
        columns.append((ahead - behind) / (2 * step))
    jacobian = np.stack(columns, axis=-1)
    numeric = np.log(np.abs(np.linalg.det(jacobian)))
    assert np.asarray(log_det) == pytest.approx(numeric, abs=1e-6)


def test_image_flow_log_determinant_matches_the_gradient_tape_jacobian():
    import tensorflow as tf

    flow = randomised_flow(small_config("realnvp_mnist"))
    points = tf.constant(inputs_for(flow, 2))
    with tf.GradientTape() as tape:
        tape.watch(points)
        latent, log_det = flow.forward(points)
    jacobian = tape.batch_jacobian(latent, points).numpy().astype(np.float64)
    _, expected = np.linalg.slogdet(jacobian)
    assert np.asarray(log_det) == pytest.approx(expected, rel=1e-4)


def zeroed(flow):
    for weight in flow.trainable_weights:
        weight.assign(np.zeros(weight.shape, np.asarray(weight.numpy()).dtype))
    return flow


def test_an_identity_flow_gives_the_closed_form_normal_nll():
    flow = zeroed(flows_density.build_flow(small_config("realnvp"), 2))  # s = tanh(0) = 0, t = 0: F = identity.
    points = np.random.default_rng(3).standard_normal((20_000, 2)).astype(np.float32)
    closed_form = 0.5 * (points.astype(np.float64) ** 2).sum(1) + math.log(2 * math.pi)
    assert np.asarray(flow(points)) == pytest.approx(closed_form, rel=1e-5)
    # On normal data the mean is the normal's entropy, (d/2)(1 + log 2 pi).
    assert flows_density.mean_nll(flow, points) == pytest.approx(1 + math.log(2 * math.pi), abs=0.03)


def test_image_nll_is_in_bits_per_dimension():
    flow = zeroed(flows_density.build_flow(small_config("realnvp_mnist"), 784))  # Only the logit map remains.
    pixels = np.random.default_rng(4).uniform(0.01, 0.99, (3, 784))
    alpha = small_config("realnvp_mnist").logit_alpha
    squeezed = alpha + (1 - 2 * alpha) * pixels
    logits = np.log(squeezed / (1 - squeezed))
    log_p = (-0.5 * logits**2 - 0.5 * math.log(2 * math.pi) + np.log((1 - 2 * alpha) / (squeezed * (1 - squeezed)))).sum(1)
    expected_bits = (-log_p + 784 * math.log(256)) / (784 * math.log(2))
    assert np.asarray(flow(pixels.astype(np.float32))) == pytest.approx(expected_bits, rel=1e-4)


@pytest.mark.parametrize("name", flows_density.DISTRIBUTIONS_1D + flows_density.DISTRIBUTIONS_2D)
def test_generators_are_seeded_and_their_densities_integrate_to_one(name):
    first = flows_density.sample_distribution(name, 500, flows_density.stream((7, 0)))
    assert np.array_equal(first, flows_density.sample_distribution(name, 500, flows_density.stream((7, 0))))
    assert not np.array_equal(first, flows_density.sample_distribution(name, 500, flows_density.stream((8, 0))))
    if first.shape[1] == 1:
        axis = np.linspace(-6, 6, 6_001)
        integral = np.exp(flows_density.log_density(name, axis[:, None])).sum() * (axis[1] - axis[0])
    else:
        axis = np.linspace(-3.5, 3.5, 701)
        xs, ys = np.meshgrid(axis, axis)
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        integral = np.exp(flows_density.log_density(name, grid)).sum() * (axis[1] - axis[0]) ** 2
    assert integral == pytest.approx(1.0, abs=0.01)
    assert np.all(np.isfinite(flows_density.log_density(name, first)))  # Every drawn point has density > 0.


def test_splits_are_disjoint_standardised_on_train_and_the_same_test_for_every_seed():
    config = dataclasses.replace(flows_density.BASE, n_train=500, n_validation=300, n_test=400)
    one, other = flows_density.generate_splits(config, seed=0), flows_density.generate_splits(config, seed=1)
    assert one.train.mean(0) == pytest.approx([0, 0], abs=1e-9) and one.train.std(0) == pytest.approx([1, 1])
    assert not np.array_equal(one.train, other.train)
    assert np.allclose(one.test * one.std + one.mean, other.test * other.std + other.mean, atol=1e-12)
    raw = [split * one.std + one.mean for split in (one.train, one.validation, one.test)]
    assert len({tuple(point) for split in raw for point in np.round(split, 12)}) == 1_200


def test_checkerboard_entropy_is_log_8_less_the_standardisation():
    config = dataclasses.replace(flows_density.BASE, data="checkerboard", n_train=5_000)
    splits = flows_density.generate_splits(config, seed=0)
    assert flows_density.data_entropy(config, splits) == pytest.approx(math.log(8) - splits.log_std_sum, abs=1e-9)


def test_kde_on_known_points():
    reference = np.array([[0.0], [2.0]])  # std 1, n = 2: Scott's bandwidth 2^(-1/5).
    bandwidth = 2 ** (-1 / 5)
    expected = np.log(0.5 * (np.exp(-0.5 * (1 / bandwidth) ** 2) * 2) / (bandwidth * math.sqrt(2 * math.pi)))
    assert flows_density.kde_log_density(reference, np.array([[1.0]]))[0] == pytest.approx(expected)


def test_a_flow_that_does_not_fit_its_data_is_refused():
    with pytest.raises(ValueError, match="takes data"):
        dataclasses.replace(flows_density.BASE, data="two_bumps").validate()
    with pytest.raises(ValueError, match="rotate"):
        dataclasses.replace(flows_density.BASE, flow="coupling_image", data="mnist", mixing="rotate").validate()


def test_snapshot_epochs_span_the_run():
    assert flows_density.snapshot_epochs(200) == (1, 3, 8, 24, 69, 200)
    assert flows_density.snapshot_epochs(1) == (1,)


@pytest.mark.parametrize("variant", list(TINY))
def test_smoke_run_writes_a_complete_record_with_pictures(run_in_process, variant, tmp_path):
    row, metrics = run_in_process("flows_density", variant, **TINY[variant])
    assert row.status == "ok" and row.units_run == TINY[variant]["epochs"]
    assert row.metric_value == pytest.approx(metrics["test_nll"]) and math.isfinite(row.metric_value)
    artifacts = {path.name for path in (tmp_path / row.artifacts_dir).iterdir()}
    if variant == "realnvp_mnist":
        assert row.dataset_source == "sample" and "samples.png" in artifacts
        assert metrics["test_bits_per_dim"] == metrics["test_nll"] and 0 < metrics["test_bits_per_dim"] < 30
        return
    assert row.dataset_source == "generated" and row.n_test == 3_000
    assert {"density_integral", "data_entropy", "gap_to_entropy", "kde_gap", "test_nll_original_scale",
            "test_nll_true_density"} <= set(metrics)
    assert metrics["test_nll_true_density"] < metrics["test_nll"]  # Nothing beats the true density.
    assert 0.5 < metrics["density_integral"] < 1.5
    expected = {"density_1d.png", "learning_process.png"} if variant == "realnvp_1d" else {"density_2d.png"}
    assert expected <= artifacts
