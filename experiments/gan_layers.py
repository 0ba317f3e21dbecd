"""The GAN's training seam: a keras.Model whose `train_step` plays one round of the two-player game
(the keras-io DCGAN shape), so `fit()`, its callbacks and dlbench's unit timer work unchanged.

Imported only by the code that trains (it needs Keras at import time); the losses take the
discriminator's logits, D(x) = sigmoid(logit), because log(sigmoid(l)) computed from l does not
overflow where log(D) of a saturated D would.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0):
    """The discriminator maximises log D(x) + log(1 - D(G(z))): its loss is minus that, averaged.
    With one-sided label smoothing s (Salimans et al. 2016) the real images' target is 1 - s instead
    of 1, so D is never pushed to certainty on real digits; the generated ones' target stays 0."""
    real_term = (1.0 - label_smoothing) * ops.log_sigmoid(real_logits) + label_smoothing * ops.log_sigmoid(-real_logits)
    return -ops.mean(real_term) - ops.mean(ops.log_sigmoid(-fake_logits))


def generator_loss(fake_logits):
    """The non-saturating generator loss -log D(G(z)): strong gradients while D still wins easily,
    where minimising log(1 - D(G(z))) gives almost none."""
    return -ops.mean(ops.log_sigmoid(fake_logits))


class GAN(keras.Model):
    def __init__(self, generator, discriminator, noise_dim: int, seed: int = 0, label_smoothing: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.label_smoothing = label_smoothing
        self.generator = generator
        self.discriminator = discriminator
        self.noise_dim = noise_dim
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        # g_optimizer also stands as the model's optimizer: its step counter (one per batch) is what
        # fit()'s progress bar reads, and Keras would otherwise build an unused RMSprop for every weight.
        super().compile(optimizer=g_optimizer, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        # 1. The discriminator: real images towards 1, generated ones towards 0.
        noise = keras.random.normal((batch_size, self.noise_dim), seed=self.noise_seed)
        with tf.GradientTape() as tape:
            fake_images = self.generator(noise, training=True)
            d_loss = discriminator_loss(self.discriminator(real_images, training=True),
                                        self.discriminator(fake_images, training=True), self.label_smoothing)
        gradients = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(gradients, self.discriminator.trainable_weights))
        # 2. The generator, on fresh noise, through the updated discriminator (whose weights stay put).
        noise = keras.random.normal((batch_size, self.noise_dim), seed=self.noise_seed)
        with tf.GradientTape() as tape:
            g_loss = generator_loss(self.discriminator(self.generator(noise, training=True), training=True))
        gradients = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(gradients, self.generator.trainable_weights))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}
