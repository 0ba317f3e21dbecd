"""Keras pieces of sentiment_imdb that a saved model needs to be loaded again: the review
standardisation of its TextVectorization and the transformer's token + position embedding.

They live in their own module because they subclass or register with Keras at import time, while
experiments/sentiment_imdb.py must import without TensorFlow (`dlbench list`, the runner's parent).
sentiment_imdb imports this module only inside the functions that train or predict.
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

PUNCTUATION = re.escape('!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~')


@keras.saving.register_keras_serializable("dlbench")
def standardize_review(text):
    """Lower case, the reviews' HTML line breaks and punctuation removed (as keras-io does), and every
    separator or control character (\\r, \\x85, \\u2028...) made a plain space: a token holding one
    would be cut in two when the vocabulary is saved one token per line, and the model would not load."""
    lowered = tf.strings.lower(text)
    without_breaks = tf.strings.regex_replace(lowered, "<br />", " ")
    plain_spaces = tf.strings.regex_replace(without_breaks, r"[\p{Z}\p{C}]", " ")
    return tf.strings.regex_replace(plain_spaces, f"[{PUNCTUATION}]", "")


@keras.saving.register_keras_serializable("dlbench")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Word embedding + learned position embedding, masking the padding id 0 (so that attention and
    pooling never look at padded positions)."""

    def __init__(self, sequence_length: int, vocabulary_size: int, embedding_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length, self.vocabulary_size, self.embedding_dim = sequence_length, vocabulary_size, embedding_dim
        self.tokens = keras.layers.Embedding(vocabulary_size, embedding_dim)
        self.positions = keras.layers.Embedding(sequence_length, embedding_dim)

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((self.sequence_length,))

    def call(self, token_ids):
        positions = keras.ops.arange(keras.ops.shape(token_ids)[-1])
        return self.tokens(token_ids) + self.positions(positions)

    def compute_mask(self, token_ids, mask=None):
        return keras.ops.not_equal(token_ids, 0)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "vocabulary_size": self.vocabulary_size, "embedding_dim": self.embedding_dim}


@keras.saving.register_keras_serializable("dlbench")
class TemperatureScaling(keras.layers.Layer):
    """Probabilities in, calibrated probabilities out: sigmoid(logit(p) / T), with the temperature T
    fitted on the validation split after training (dlbench.metrics.fit_temperature, the same clipping).
    Saved in the layer's config, so a reloaded model (and `dlbench predict`) answers calibrated."""

    def __init__(self, temperature: float = 1.0, epsilon: float = 1e-7, **kwargs):
        super().__init__(**kwargs)
        self.temperature, self.epsilon = float(temperature), float(epsilon)

    def call(self, probabilities):
        clipped = keras.ops.clip(probabilities, self.epsilon, 1.0 - self.epsilon)
        logits = keras.ops.log(clipped) - keras.ops.log1p(-clipped)
        return keras.ops.sigmoid(logits / self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable("dlbench")
class LastTokens(keras.layers.Layer):
    """Word ids (padded with 0 at the end) -> the last ``length`` ids of each review, padded at the end
    to ``length``: a review's ending often holds its verdict ("8/10, see it"), and Keras' pad_sequences,
    which keras-io's IMDB examples use, keeps the end too."""

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)

    def call(self, token_ids):
        reviews = tf.RaggedTensor.from_tensor(token_ids, padding=0)  # Each review's ids, padding dropped.
        return reviews[:, -self.length:].to_tensor(default_value=0, shape=[None, self.length])

    def get_config(self):
        return {**super().get_config(), "length": self.length}
