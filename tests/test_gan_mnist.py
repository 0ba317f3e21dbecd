"""gan_mnist and its judge: the losses on known D outputs, one train_step, the scores on known inputs,
the classifier cache, and a smoke run of every variant on the shipped MNIST sample."""

import dataclasses
import math

import numpy as np
import pytest

from dlbench import data
from experiments import digit_judge, gan_mnist


@pytest.fixture(scope="module")
def judge_cache(tmp_path_factory):
    """One cache directory for the module: the sample's judge is trained once, then reused."""
    return tmp_path_factory.mktemp("dlbench_cache")


@pytest.fixture
def cached(monkeypatch, judge_cache):
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(judge_cache))
    return judge_cache


# ---------------------------------------------------------------------------------------- the losses


def logit(probability):
    return np.log(probability / (1 - probability)).astype(np.float32)


def test_gan_losses_match_the_course_formulas_on_known_discriminator_outputs():
    from experiments.gan_layers import discriminator_loss, generator_loss

    d_real, d_fake = np.array([0.9, 0.6, 0.99]), np.array([0.2, 0.5, 0.01])
    expected_d = -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))  # -(log D(x) + log(1 - D(G(z))))
    expected_g = -np.mean(np.log(d_fake))  # The non-saturating -log D(G(z)).
    assert float(discriminator_loss(logit(d_real), logit(d_fake))) == pytest.approx(expected_d, rel=1e-5)
    assert float(generator_loss(logit(d_fake))) == pytest.approx(expected_g, rel=1e-5)
    # A perfect discriminator: its loss goes to 0 while the generator's grows without overflow.
    assert float(discriminator_loss(np.float32([40.0]), np.float32([-40.0]))) == pytest.approx(0.0, abs=1e-6)
    assert float(generator_loss(np.float32([-40.0]))) == pytest.approx(40.0, rel=1e-4)
    # One-sided label smoothing s: the real digits' target is 1 - s, the generated ones' stays 0.
    smoothed = (-np.mean(0.9 * np.log(d_real) + 0.1 * np.log(1 - d_real)) - np.mean(np.log(1 - d_fake)))
    assert float(discriminator_loss(logit(d_real), logit(d_fake), 0.1)) == pytest.approx(smoothed, rel=1e-5)


def test_the_discriminator_learning_rate_and_label_smoothing_reach_the_game():
    config = dataclasses.replace(gan_mnist.EXPERIMENT.variants["dcgan"].config, generator_filters=4,
                                 discriminator_filters=4, learning_rate=1e-4, discriminator_learning_rate=4e-4,
                                 label_smoothing=0.1)
    gan = gan_mnist.build_gan(config, seed=0)
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(4e-4)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(1e-4)
    assert gan.label_smoothing == 0.1
    default = gan_mnist.build_gan(dataclasses.replace(config, discriminator_learning_rate=0.0), seed=0)
    assert float(default.d_optimizer.learning_rate) == pytest.approx(1e-4)  # 0 means "as the generator's".
    with pytest.raises(ValueError, match="label_smoothing"):
        dataclasses.replace(config, label_smoothing=0.7).validate()


@pytest.mark.parametrize("variant", ["gan_dense", "dcgan"])
def test_models_have_the_shapes_the_game_needs(variant):
    config = dataclasses.replace(gan_mnist.EXPERIMENT.variants[variant].config, generator_filters=4,
                                 discriminator_filters=4, dense_units=8)
    generator = gan_mnist.build_generator(config)
    discriminator = gan_mnist.build_discriminator(config)
    images = generator(np.zeros((3, config.noise_dim), np.float32))
    assert tuple(images.shape) == (3, 28, 28, 1)
    assert float(np.max(np.abs(images))) <= 1.0  # tanh: the range the real digits are scaled to.
    assert tuple(discriminator(images).shape) == (3, 1)


def test_one_train_step_moves_both_players():
    import keras

    from experiments.gan_layers import discriminator_loss, generator_loss

    keras.utils.set_random_seed(0)
    config = dataclasses.replace(gan_mnist.Config(), generator_filters=4, discriminator_filters=4,
                                 discriminator_dropout=0.0, learning_rate=0.01)
    gan = gan_mnist.build_gan(config, seed=0)
    real = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    noise = np.random.default_rng(1).standard_normal((16, config.noise_dim)).astype(np.float32)

    def losses():
        fake = gan.generator(noise, training=False)
        return (float(discriminator_loss(gan.discriminator(real), gan.discriminator(fake))),
                float(generator_loss(gan.discriminator(fake))))

    generator_before = [weight.numpy().copy() for weight in gan.generator.trainable_weights]
    discriminator_before = [weight.numpy().copy() for weight in gan.discriminator.trainable_weights]
    d_before, g_before = losses()
    logs = gan.train_step(real)
    assert set(logs) == {"d_loss", "g_loss"} and all(math.isfinite(float(value)) for value in logs.values())
    d_after, g_after = losses()
    assert d_after != pytest.approx(d_before, abs=1e-6) and g_after != pytest.approx(g_before, abs=1e-6)
    assert any(np.abs(after.numpy() - before).max() > 0
               for after, before in zip(gan.generator.trainable_weights, generator_before))
    assert any(np.abs(after.numpy() - before).max() > 0
               for after, before in zip(gan.discriminator.trainable_weights, discriminator_before))


# ---------------------------------------------------------------------------------------- the scores


def test_inception_score_is_10_for_confident_uniform_classes_and_1_for_one_class():
    one_hot = np.eye(10)[np.arange(1000) % 10]
    assert digit_judge.inception_score(one_hot) == pytest.approx(10.0, rel=1e-6)
    assert digit_judge.inception_score(np.eye(10)[np.zeros(100, int)]) == pytest.approx(1.0, rel=1e-6)
    assert digit_judge.inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0, rel=1e-6)  # Unreadable.


def test_frechet_distance_is_zero_for_a_set_with_itself_and_grows_with_a_shift():
    features = np.random.default_rng(0).standard_normal((2000, 8))
    assert digit_judge.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = [digit_judge.frechet_distance(features, features + shift) for shift in (0.5, 1.0, 2.0)]
    # A shift of every feature by s adds ||s||^2 = 8 s^2 and nothing else.
    assert shifted == pytest.approx([8 * 0.25, 8 * 1.0, 8 * 4.0], rel=1e-6)
    scaled = digit_judge.frechet_distance(features, features * 2)  # Covariance 4I vs I: 8 * (2 - 1)^2.
    assert scaled == pytest.approx(8.0, rel=0.05)


def test_class_shares_count_predicted_digits():
    probabilities = np.eye(10)[[3, 3, 3, 7]]
    shares = digit_judge.class_shares(probabilities)
    assert shares[3] == 0.75 and shares[7] == 0.25 and shares.sum() == pytest.approx(1.0)


def tiny_dataset(offset=0):
    sample = data.load("mnist")
    return data.Dataset("mnist", sample.x_train[offset:offset + 300], sample.y_train[offset:offset + 300],
                        sample.x_test[:100], sample.y_test[:100], data.SOURCE_SAMPLE, "test")


def test_the_judge_is_cached_by_data_and_retrained_when_the_data_change(cached, monkeypatch):
    monkeypatch.setattr(digit_judge, "EPOCHS", 1)
    first, trained = digit_judge.load_or_train(tiny_dataset())
    assert trained and first.path.exists() and first.path.parent == cached / "mnist_judge"
    again, trained_again = digit_judge.load_or_train(tiny_dataset())
    assert not trained_again and again.path == first.path and again.test_accuracy == first.test_accuracy
    other, trained_other = digit_judge.load_or_train(tiny_dataset(offset=300))
    assert trained_other and other.path != first.path
    features = other.features.predict(digit_judge.as_images(tiny_dataset().x_test[:5]), verbose=0)
    assert features.shape == (5, 128)


def test_grid_is_an_8_by_8_png(tmp_path):
    from PIL import Image

    gan_mnist.save_grid(np.random.default_rng(0).random((64, 28, 28, 1)), tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (2 * (8 * 30 + 2), 2 * (8 * 30 + 2))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="grid_epochs"):
        dataclasses.replace(gan_mnist.Config(), grid_epochs="1,two").validate()
    with pytest.raises(ValueError, match="beta_1"):
        dataclasses.replace(gan_mnist.Config(), beta_1=1.0).validate()


# ------------------------------------------------------------------------------------------ smoke runs


@pytest.mark.parametrize("variant", ["gan_dense", "dcgan"])
def test_smoke_run_records_scores_references_and_grids(run_in_process, cached, variant, tmp_path):
    row, metrics = run_in_process("gan_mnist", variant, epochs=2, train_subset=256, batch_size=64,
                                  evaluation_samples=200, generator_filters=4, discriminator_filters=4,
                                  dense_units=16, grid_epochs="1")
    assert row.status == "ok" and row.dataset_source == "sample" and row.units_run == 2
    assert row.metric_value == pytest.approx(metrics["fcd"]) and row.metric_value > 0
    for key in ("is", "is_ratio", "min_class_share", "real_test_is", "real_train_fcd", "noise_fcd",
                "judge_test_accuracy", "class_share_9"):
        assert math.isfinite(metrics[key]), key
    # The references bracket the scale: real digits close to the test digits, noise far away.
    assert metrics["real_train_fcd"] < metrics["noise_fcd"]
    assert sum(metrics[f"class_share_{digit}"] for digit in range(10)) == pytest.approx(1.0)
    history = row.history_file
    assert history and (tmp_path / history).exists()
    header = (tmp_path / history).read_text().splitlines()[0].split(",")
    assert {"d_loss", "g_loss", "fcd", "is_ratio"} <= set(header)
    artifacts = tmp_path / row.artifacts_dir
    assert {"grid_epoch_001.png", "grid_final.png", "generator.keras"} <= {path.name for path in artifacts.iterdir()}
