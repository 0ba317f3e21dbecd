"""
The judge of generated digits: a small MNIST classifier, trained once and cached, and the three
numbers it gives a set of images (docs/topics/gan_mnist.md: "quality", without Inception weights).

- Inception Score (IS) with this classifier: exp(E_x KL(p(y|x) || p(y))), 1 for images all of one
  class or unreadable, 10 for confident predictions spread evenly over the ten digits. The real test
  images score about 9.9 with a 99 % classifier; runs store IS as a ratio to that score (`is_ratio`),
  so the number does not depend on how confident this classifier happens to be.
- Frechet distance between the classifier's penultimate-layer features of two image sets ("FCD",
  FID's recipe with this network in place of Inception): ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2).
  It is biased upward at small sample sizes, so every comparison uses the same number of images.
- The share of each predicted class: a missing digit is mode collapse, which IS only hints at.

The classifier is trained on the training split only, evaluated on the test split (its accuracy is
stored with every score), and cached under $DLBENCH_CACHE_DIR/mnist_judge/ by a hash of the data it
was trained on and of its recipe: a different copy of MNIST (the shipped sample, say) gets its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from dlbench import data

# Bump when the recipe below changes: the cache key includes it, so an old judge is never reused.
RECIPE_VERSION = 1
EPOCHS = 6  # 4 epochs gave 99.03 % test accuracy, too close to the 99 % the scores need.
BATCH_SIZE = 128
FEATURE_LAYER = "features"


@dataclasses.dataclass
class Judge:
    model: object  # keras.Model: images in [0, 1], (N, 28, 28, 1) -> class probabilities.
    features: object  # keras.Model: the same images -> penultimate-layer features.
    test_accuracy: float
    path: Path


# ------------------------------------------------------------------------------------ the classifier


def build_classifier():
    import keras

    inputs = keras.Input(shape=(28, 28, 1))
    hidden = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    hidden = keras.layers.MaxPooling2D()(hidden)
    hidden = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(hidden)
    hidden = keras.layers.MaxPooling2D()(hidden)
    hidden = keras.layers.Dropout(0.25)(keras.layers.Flatten()(hidden))
    features = keras.layers.Dense(128, activation="relu", name=FEATURE_LAYER)(hidden)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Dropout(0.5)(features))
    return keras.Model(inputs, outputs, name="mnist_judge")


def data_key(dataset) -> str:
    """A hash of the images and labels the judge learns from and is tested on, and of its recipe."""
    digest = hashlib.sha256(f"recipe {RECIPE_VERSION} epochs {EPOCHS} batch {BATCH_SIZE}".encode())
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def as_images(pixels) -> np.ndarray:
    """uint8 digits (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], the judge's input."""
    pixels = np.asarray(pixels)
    images = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)
    return images.reshape(-1, 28, 28, 1)


def train_classifier(dataset, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    model = build_classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    model.fit(as_images(dataset.x_train), dataset.y_train, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=0)
    _, test_accuracy = model.evaluate(as_images(dataset.x_test), dataset.y_test, batch_size=1024, verbose=0)
    return model, float(test_accuracy)


def load_or_train(dataset) -> tuple[Judge, bool]:
    """The cached judge for this data, or a new one trained and cached. Returns (judge, trained_now)."""
    import keras

    directory = data.cache_dir() / "mnist_judge"
    path = directory / f"judge-{data_key(dataset)}.keras"
    info_path = path.with_suffix(".json")
    trained_now = False
    if path.exists() and info_path.exists():
        model = keras.saving.load_model(path)
        test_accuracy = json.loads(info_path.read_text())["test_accuracy"]
    else:
        model, test_accuracy = train_classifier(dataset)
        trained_now = True
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Written under a temporary name and renamed: a reader never sees half a file.
            partial = path.with_name(f".{path.stem}.{os.getpid()}.keras")
            model.save(partial)
            info_path.write_text(json.dumps({"test_accuracy": test_accuracy, "n_train": len(dataset.x_train),
                                             "dataset_source": dataset.source, "recipe": RECIPE_VERSION}))
            partial.replace(path)
        except OSError as error:  # A read-only cache costs the next run a retraining, not this run.
            import warnings

            warnings.warn(f"could not cache the MNIST judge in {directory}: {data.describe_error(error)}",
                          stacklevel=2)
    features = keras.Model(model.inputs, model.get_layer(FEATURE_LAYER).output)
    return Judge(model, features, test_accuracy, path), trained_now


# ------------------------------------------------------------------------------------------ the scores


def inception_score(probabilities) -> float:
    """exp(mean KL(p(y|x) || p(y))) over the rows of ``probabilities`` (one distribution per image)."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    marginal = probabilities.mean(axis=0, keepdims=True)
    kl = np.sum(probabilities * (np.log(probabilities) - np.log(marginal)), axis=1)
    return float(np.exp(kl.mean()))


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples).
    Tr((S1 S2)^1/2) is computed as Tr((S1^1/2 S2 S1^1/2)^1/2), whose matrix is symmetric: the
    eigenvalues are real, with no complex parts to discard as scipy's sqrtm leaves."""
    features_a, features_b = (np.asarray(f, dtype=np.float64) for f in (features_a, features_b))
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    covariance_a = np.cov(features_a, rowvar=False)
    covariance_b = np.cov(features_b, rowvar=False)
    root_a = _symmetric_sqrt(covariance_a)
    cross = np.linalg.eigvalsh(root_a @ covariance_b @ root_a)
    trace_root = np.sum(np.sqrt(np.clip(cross, 0, None)))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a) + np.trace(covariance_b) - 2 * trace_root
    return float(max(distance, 0.0))


def class_shares(probabilities) -> np.ndarray:
    """The share of images predicted as each of the ten digits."""
    predicted = np.argmax(np.asarray(probabilities), axis=1)
    return np.bincount(predicted, minlength=10) / max(len(predicted), 1)


class Scorer:
    """Scores image sets against the real test images with one judge (its features computed once)."""

    def __init__(self, judge: Judge, test_images):
        self.judge = judge
        self.test_probabilities, self.test_features = self.outputs(test_images)
        self.real_test_is = inception_score(self.test_probabilities)

    def outputs(self, images) -> tuple[np.ndarray, np.ndarray]:
        images = as_images(images)
        probabilities = np.asarray(self.judge.model.predict(images, batch_size=1000, verbose=0))
        features = np.asarray(self.judge.features.predict(images, batch_size=1000, verbose=0))
        return probabilities, features

    def score(self, images) -> dict[str, float]:
        """is, is_ratio, fcd and the class shares of ``images`` (uint8 or floats in [0, 1])."""
        probabilities, features = self.outputs(images)
        score = inception_score(probabilities)
        shares = class_shares(probabilities)
        return {"is": score, "is_ratio": score / self.real_test_is,
                "fcd": frechet_distance(features, self.test_features),
                **{f"class_share_{digit}": float(share) for digit, share in enumerate(shares)},
                "min_class_share": float(shares.min()), "max_class_share": float(shares.max())}
