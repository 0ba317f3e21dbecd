"""
Deep Q-learning on the mouse game (docs/topics/dqn_mouse.md): a random mouse, dense and convolutional
deep Q-networks, and the convolutional one with epsilon decaying over training.

The game is experiments/mouse_game.py (a Gymnasium environment, `dlbench/MouseGame-v0`): cheese
+0.5, poison -1, a 5 x 5 view, 4 moves, 200 moves a game on a 13 x 13 grid. Deep Q-learning as the
course writes it: a replay buffer (a NumPy ring buffer), batched updates on sampled transitions, the
Bellman target r + gamma max_a' Q_target(s', a') from a target network synced every
`target_sync_updates` updates, no bootstrap at the end of a game, squared TD error (Huber as a
switch), a compiled GradientTape train step, the greedy policy at evaluation. Several games are
stepped together (`parallel_games`) so one network call serves them all.

Variants, chosen by the config's `agent` (which --set refuses) and epsilon: `random` (the baseline,
no network), `dense` (course Model 1: the flattened view), `conv` (Model 2: a convolutional network
on the view), both exploring with a constant epsilon, and `conv_egreedy` (Model 2+: epsilon
decaying linearly from 1.0 to `epsilon_end`). All agents see the visited-cells channel and, in
training only, pay `visited_penalty` for walking on a cell they have already visited without eating
(the "exploring" trick); the score never includes it.

Selection and test: two fixed sets of 100 games, never used in training and the same for every variant.
Every `validation_every` rounds the greedy mouse plays the validation games (seeds 20,000,000 + i); the
weights with the best validation score are kept: the training length is chosen on those games
(conv_memory's tau = 20 moves was set a priori, not tuned). The test games (seeds 10,000,000 + i) are played once, at the end:
the headline metric is their mean score per game with the greedy policy (cheese x 0.5 - poison), and
`score_epsilon_0_1` the mean score with epsilon = 0.1 (the protocol of a published implementation of
this game, which reports 13.1); `validation_score` and `selected_episode` say what was kept. The `parallel_games` games of a round are logged together, as one
history entry with their mean score (seconds per episode = the round's time / parallel_games).

Measured figures (greedy and epsilon-0.1 scores per agent, seconds, environment steps/s) are not
typed here: docs/measurements.md (generated) and `dlbench compare dqn_mouse` generate them from the
run records. Longer training was seen to lower the greedy score while the epsilon-0.1 score held: a
greedy mouse with a binary visited mark loops once everything in view has been visited, and the loops
grow with training. `conv_memory` sees a fading trace instead (how long ago each visible cell was
visited: `visited_memory`), which points it to where it has not been lately.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Literal

import numpy as np

from dlbench.experiment import Experiment, Metric, Variant
from experiments.mouse_game import ENVIRONMENT_ID

# Keras and TensorFlow are imported inside the functions that use them (the random mouse never does).
EVALUATION_GAMES = 100  # Test games, and validation games.
EVALUATION_SEED = 10_000_000  # Test games use seeds 10,000,000 + i; training seeds stay below.
VALIDATION_SEED = 20_000_000  # Validation games: seeds 20,000,000 + i.
TRAINING_SEEDS_PER_RUN_SEED = 1_000_000  # Game seeds of a training run: seed * 1e6 + game index.
MAX_RUN_SEED = EVALUATION_SEED // TRAINING_SEEDS_PER_RUN_SEED - 1  # Seed 10 would train on the test games.
AGENTS = ("random", "dense", "conv")


@dataclasses.dataclass(frozen=True)
class Config:
    agent: Literal["random", "dense", "conv"] = "conv"  # No network, course Model 1 or Model 2.
    episodes: int = 160  # Training games (rounded up to a multiple of parallel_games); see the docstring.
    parallel_games: int = 16  # Games stepped together; one network call acts for all of them.
    gamma: float = 0.99
    learning_rate: float = 1e-3  # Adam.
    batch_size: int = 64
    replay_capacity: int = 100_000  # Transitions kept (a ring buffer).
    warmup_transitions: int = 2_000  # Collected before the first update.
    updates_per_round_step: int = 1  # Gradient updates after each step of the parallel games.
    target_sync_updates: int = 500  # Copy the online network into the target network this often.
    huber: bool = True  # Huber loss on the TD error; false: squared error (the course's).
    double_dqn: bool = False  # Target r + gamma Q_target(s', argmax_a Q(s', a)) (van Hasselt et al.).
    epsilon_start: float = 0.1
    epsilon_end: float = 0.1
    epsilon_decay_fraction: float = 0.8  # Share of training over which epsilon goes start -> end.
    visited_channel: bool = True
    visited_penalty: float = 0.1  # Training only.
    visited_memory: float = 0.0  # 0: the visited channel is a 0/1 mark; tau > 0: exp(-moves since / tau).
    validation_every: int = 1  # Rounds between two plays of the validation games (best weights kept).
    hidden_units: int = 128
    conv_filters: int = 32
    size: int = 13
    horizon: int = 200
    jit_compile: bool = False  # Explicit, as in every experiment: "auto" would differ between CPU and GPU.

    def validate(self):
        if self.agent not in AGENTS:
            raise ValueError(f"unknown agent '{self.agent}'; valid: {', '.join(AGENTS)}")
        if min(self.episodes, self.parallel_games, self.batch_size, self.replay_capacity, self.target_sync_updates,
               self.hidden_units, self.conv_filters, self.size, self.horizon) < 1:
            raise ValueError("episodes, parallel_games, batch_size, replay_capacity, target_sync_updates, "
                             "hidden_units, conv_filters, size and horizon must be >= 1")
        if not 0 <= self.gamma <= 1 or self.learning_rate <= 0:
            raise ValueError("gamma must be in [0, 1] and learning_rate > 0")
        if not (0 <= self.epsilon_end <= 1 and 0 <= self.epsilon_start <= 1 and 0 < self.epsilon_decay_fraction <= 1):
            raise ValueError("epsilon_start and epsilon_end must be in [0, 1], epsilon_decay_fraction in (0, 1]")
        if self.warmup_transitions < 0 or self.updates_per_round_step < 0 or self.visited_penalty < 0:
            raise ValueError("warmup_transitions, updates_per_round_step and visited_penalty must be >= 0")
        if self.visited_memory < 0 or self.validation_every < 1:
            raise ValueError("visited_memory must be >= 0 and validation_every >= 1")


# ------------------------------------------------------------------------------------------ The games


def make_games(config: Config, count: int, training: bool):
    """``count`` mouse games; training games pay the visited penalty, evaluation games never do."""
    import gymnasium

    import experiments.mouse_game  # noqa: F401  Registers dlbench/MouseGame-v0.

    return [gymnasium.make("dlbench/MouseGame-v0", size=config.size, horizon=config.horizon,
                           visited_channel=config.visited_channel, visited_memory=config.visited_memory,
                           visited_penalty=config.visited_penalty if training else 0.0).unwrapped
            for _ in range(count)]


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', done) in preallocated NumPy arrays."""

    def __init__(self, capacity: int, observation_shape: tuple[int, ...]):
        self.capacity = capacity
        self.observations = np.zeros((capacity, *observation_shape), np.float32)
        self.next_observations = np.zeros((capacity, *observation_shape), np.float32)
        self.actions = np.zeros(capacity, np.int32)
        self.rewards = np.zeros(capacity, np.float32)
        self.dones = np.zeros(capacity, np.float32)
        self.position = 0  # Where the next transition goes.
        self.size = 0

    def add(self, observations, actions, rewards, next_observations, dones) -> None:
        """Add a batch of transitions, overwriting the oldest once full."""
        indices = (self.position + np.arange(len(actions))) % self.capacity
        self.observations[indices] = observations
        self.actions[indices] = actions
        self.rewards[indices] = rewards
        self.next_observations[indices] = next_observations
        self.dones[indices] = dones
        self.position = int((self.position + len(actions)) % self.capacity)
        self.size = min(self.size + len(actions), self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator):
        indices = rng.integers(0, self.size, size=batch_size)
        return (self.observations[indices], self.actions[indices], self.rewards[indices],
                self.next_observations[indices], self.dones[indices])


def epsilon_at(config: Config, progress: float) -> float:
    """Linear decay from epsilon_start to epsilon_end over the first epsilon_decay_fraction of training."""
    share = min(progress / config.epsilon_decay_fraction, 1.0)
    return config.epsilon_start + share * (config.epsilon_end - config.epsilon_start)


# ----------------------------------------------------------------------------------- Build the model


def build_q_network(config: Config, observation_shape: tuple[int, ...]):
    """Q(s, .) for the 4 moves: course Model 1 (dense on the flattened view) or Model 2 (convolutional)."""
    import keras

    inputs = keras.Input(shape=observation_shape)
    if config.agent == "dense":
        features = keras.layers.Flatten()(inputs)
    else:
        # Teaching note: 3 x 3 convolutions see each cell with its neighbours: cheese next to poison
        # is a pattern, wherever it is in the view.
        hidden = keras.layers.Conv2D(config.conv_filters, 3, padding="same", activation="relu")(inputs)
        hidden = keras.layers.Conv2D(2 * config.conv_filters, 3, activation="relu")(hidden)  # 5x5 -> 3x3.
        features = keras.layers.Flatten()(hidden)
    hidden = keras.layers.Dense(config.hidden_units, activation="relu")(features)
    hidden = keras.layers.Dense(config.hidden_units, activation="relu")(hidden)
    return keras.Model(inputs, keras.layers.Dense(4)(hidden), name=f"q_{config.agent}")


def bellman_targets(rewards, next_q_values, dones, gamma: float, online_next_q_values=None):
    """r + gamma max_a' Q_target(s', a'), and just r at the end of a game (no bootstrap). With
    ``online_next_q_values`` (double DQN), a' is the online network's choice, valued by the target
    network. Works on NumPy arrays and, inside the compiled train step, on tensors."""
    import keras

    if online_next_q_values is None:
        next_values = keras.ops.max(next_q_values, axis=1)
    else:
        choice = keras.ops.argmax(online_next_q_values, axis=1)
        next_values = keras.ops.take_along_axis(next_q_values, keras.ops.expand_dims(choice, 1), axis=1)[:, 0]
    return rewards + gamma * (1.0 - dones) * next_values


def make_train_step(online, target, optimizer, config: Config):
    """The compiled update: TD targets from the target network, loss on Q(s, a), one optimizer step."""
    import keras
    import tensorflow as tf

    loss_function = keras.losses.Huber() if config.huber else keras.losses.MeanSquaredError()

    @tf.function(jit_compile=config.jit_compile)
    def train_step(observations, actions, rewards, next_observations, dones):
        online_next = online(next_observations, training=False) if config.double_dqn else None
        targets = bellman_targets(rewards, target(next_observations, training=False), dones, config.gamma,
                                  online_next)
        with tf.GradientTape() as tape:
            q_values = online(observations, training=True)
            taken = tf.gather(q_values, actions, axis=1, batch_dims=1)
            loss = loss_function(tf.stop_gradient(targets), taken)
        gradients = tape.gradient(loss, online.trainable_variables)
        optimizer.apply_gradients(zip(gradients, online.trainable_variables))
        return loss

    return train_step


def make_policy(online, config: Config):
    """Greedy moves for a batch of observations (compiled), epsilon applied by the caller."""
    import tensorflow as tf

    @tf.function(jit_compile=config.jit_compile)
    def greedy(observations):
        return tf.argmax(online(observations, training=False), axis=1, output_type=tf.int32)

    return lambda observations: greedy(observations).numpy()


# ----------------------------------------------------------------------------------------------- Train


def train(config: Config, record, observation_shape):
    """Deep Q-learning over config.episodes games, parallel_games at a time, the greedy mouse playing the
    validation games every validation_every rounds. Returns the greedy policy with the weights that
    scored best there."""
    import keras

    online = build_q_network(config, observation_shape)
    target = build_q_network(config, observation_shape)
    target.set_weights(online.get_weights())
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    train_step = make_train_step(online, target, optimizer, config)
    policy = make_policy(online, config)
    record.set(parameters=online.count_params())

    rng = np.random.default_rng(record.seed)
    buffer = ReplayBuffer(config.replay_capacity, observation_shape)
    games = make_games(config, config.parallel_games, training=True)
    rounds = math.ceil(config.episodes / config.parallel_games)
    record.expect_units(rounds * config.parallel_games, items_per_unit=config.horizon)  # Units: games.
    updates = 0
    best = {"score": -math.inf, "episode": 0, "weights": online.get_weights()}
    for round_index in range(rounds):
        start = time.perf_counter()
        epsilon = epsilon_at(config, round_index / rounds)
        seeds = record.seed * TRAINING_SEEDS_PER_RUN_SEED + round_index * config.parallel_games
        observations = np.stack([game.reset(seed=seeds + index)[0] for index, game in enumerate(games)])
        returns, scores, losses = np.zeros(len(games)), np.zeros(len(games)), []
        for _ in range(config.horizon):
            actions = policy(observations)
            explore = rng.random(len(games)) < epsilon
            actions = np.where(explore, rng.integers(0, 4, size=len(games)), actions).astype(np.int32)
            steps = [game.step(int(action)) for game, action in zip(games, actions)]
            next_observations = np.stack([step[0] for step in steps])
            rewards = np.array([step[1] for step in steps], np.float32)
            dones = np.array([step[2] for step in steps], np.float32)
            buffer.add(observations, actions, rewards, next_observations, dones)
            returns += rewards
            scores += [step[4]["score"] for step in steps]
            observations = next_observations
            if buffer.size >= max(config.warmup_transitions, config.batch_size):
                for _ in range(config.updates_per_round_step):
                    losses.append(train_step(*buffer.sample(config.batch_size, rng)))
                    updates += 1
                    if updates % config.target_sync_updates == 0:
                        target.set_weights(online.get_weights())
        loss = float(np.mean([float(value) for value in losses])) if losses else float("nan")
        validation = {}
        if (round_index + 1) % config.validation_every == 0 or round_index == rounds - 1:
            validation_score = play(config, policy, epsilon=0.0, seed=0, first_seed=VALIDATION_SEED)[0].mean()
            validation = {"validation_score": validation_score}
            if validation_score > best["score"]:
                best = {"score": validation_score, "episode": (round_index + 1) * len(games),
                        "weights": online.get_weights()}
        # The round's games ran together: one entry for all of them, with their mean figures.
        record.unit(time.perf_counter() - start, items=len(games) * config.horizon, count=len(games),
                    score=scores.mean(), training_return=returns.mean(), loss=loss, epsilon=epsilon, **validation)
    online.set_weights(best["weights"])
    record.add_metrics(updates=updates, validation_score=best["score"], selected_episode=best["episode"])
    return policy


# -------------------------------------------------------------------------------------------- Evaluate


# What each colour of a game picture means: the colours MouseGameEnv.render paints (mouse_game.py).
PICTURE_LEGEND = {"mouse": (220, 30, 30), "cheese (+0.5)": (250, 200, 40), "poison (-1)": (150, 40, 160),
                  "wall": (60, 60, 60), "visited": (205, 215, 235), "floor": (235, 235, 235)}
FRAME_EVERY = 10  # A picture of the first evaluation game every 10 moves.


def play(config: Config, policy, epsilon: float, seed: int, first_seed: int = EVALUATION_SEED,
         frames: list | None = None):
    """The 100 test games (or, with first_seed=VALIDATION_SEED, the validation games; fixed seeds, no
    penalty), all stepped together: their scores, cheese and poison counts. ``seed`` drives the
    exploring moves; ``frames`` collects pictures of the first game."""
    games = make_games(config, EVALUATION_GAMES, training=False)
    rng = np.random.default_rng(seed)
    observations = np.stack([game.reset(seed=first_seed + index)[0] for index, game in enumerate(games)])
    scores = np.zeros(len(games))
    for step in range(config.horizon):
        if frames is not None and step % FRAME_EVERY == 0:
            games[0].render_mode = "rgb_array"
            frames.append(games[0].render())
        greedy = policy(observations) if policy is not None else np.zeros(len(games), np.int32)
        explore = rng.random(len(games)) < epsilon
        actions = np.where(explore, rng.integers(0, 4, size=len(games)), greedy)
        results = [game.step(int(action)) for game, action in zip(games, actions)]
        observations = np.stack([result[0] for result in results])
        scores += [result[4]["score"] for result in results]
    cheese = np.array([game.cheese_eaten for game in games])
    poison = np.array([game.poison_eaten for game in games])
    return scores, cheese, poison


def save_pictures(record, frames, variant: str) -> None:
    """A GIF and a PNG strip of the first evaluation game (the strip with its colour legend), and the
    learning curve."""
    from PIL import Image
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt

    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(record.artifact_path(f"game_{variant}.gif"), save_all=True, append_images=images[1:],
                   duration=250, loop=0)
    stride = max(1, len(frames) // 6)
    shown = list(range(0, len(frames), stride))[:6]
    figure, axes = plt.subplots(1, len(shown), figsize=(1.7 * len(shown), 2.6), squeeze=False)
    for axis, index in zip(axes[0], shown):
        axis.imshow(frames[index])
        axis.set_title(f"move {index * FRAME_EVERY}", fontsize=8)
        axis.set_axis_off()
    handles = [matplotlib.patches.Patch(facecolor=np.array(colour) / 255, edgecolor="grey", label=name)
               for name, colour in PICTURE_LEGEND.items()]
    figure.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=7, frameon=False)
    figure.suptitle(f"dqn_mouse / {variant}: the first evaluation game", fontsize=9)
    figure.tight_layout(rect=(0, 0.1, 1, 1))  # The bottom tenth holds the legend.
    figure.savefig(record.artifact_path(f"game_{variant}_strip.png"), dpi=90)
    plt.close(figure)
    if record.units:
        episodes = [unit["episode"] for unit in record.units]
        figure, axis = plt.subplots(figsize=(7, 3.6))
        axis.plot(episodes, [unit["score"] for unit in record.units], "o-", markersize=3,
                  label="mean score of each round of games")
        axis.plot(episodes, [unit["training_return"] for unit in record.units], "-", alpha=0.6,
                  label="training return (with the visited penalty)")
        validated = [(unit["episode"], unit["validation_score"]) for unit in record.units if "validation_score" in unit]
        if validated:
            axis.plot(*zip(*validated), "s-", markersize=3, label="greedy score on the validation games")
        axis.set(xlabel="training episode", ylabel="score per game", title=f"dqn_mouse / {variant}")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(record.artifact_path(f"learning_curve_{variant}.png"), dpi=90)
        plt.close(figure)


# ------------------------------------------------------------------------------------------------- Run


def run(config: Config, variant: str, record) -> None:
    record.generated_data("mouse_game", f"{ENVIRONMENT_ID}: {config.size}x{config.size} games drawn from seeds; "
                          f"test seeds {EVALUATION_SEED}+0..{EVALUATION_GAMES - 1}, "
                          f"validation seeds {VALIDATION_SEED}+0..{EVALUATION_GAMES - 1}")
    record.set(n_test=EVALUATION_GAMES, n_validation=EVALUATION_GAMES if config.agent != "random" else 0)
    observation_shape = make_games(config, 1, training=False)[0].observation_space.shape
    policy = None
    if config.agent != "random":
        with record.phase("train", training=True):
            policy = train(config, record, observation_shape)
    with record.phase("eval"):
        frames = []
        scores, cheese, poison = play(config, policy, epsilon=1.0 if policy is None else 0.0,
                                      seed=record.seed, frames=frames)
        if policy is not None:
            exploring_scores, _, _ = play(config, policy, epsilon=0.1, seed=record.seed + 1)
    record.add_metrics(mean_score=scores.mean(), score_std=scores.std(), cheese_per_game=cheese.mean(),
                       poison_per_game=poison.mean(),
                       score_epsilon_0_1=(exploring_scores if policy is not None else scores).mean())
    save_pictures(record, frames, variant)


RANDOM = Config(agent="random", episodes=1, epsilon_start=1.0, epsilon_end=1.0)
DENSE = Config(agent="dense")
CONV = Config(agent="conv")
CONV_EGREEDY = Config(agent="conv", epsilon_start=1.0, epsilon_end=0.01)
CONV_MEMORY = Config(agent="conv", visited_memory=20.0)

EXPERIMENT = Experiment(
    title="Deep Q-learning on the mouse game: random mouse, dense and convolutional Q-networks, decaying epsilon",
    dataset="mouse_game",
    variants={
        "random": Variant("the baseline: a mouse moving at random (no network)", RANDOM, devices=("cpu",),
                          uses_tensorflow=False),
        "dense": Variant("course Model 1: a dense Q-network on the flattened 5x5 view, epsilon 0.1", DENSE),
        "conv": Variant("course Model 2: a convolutional Q-network on the 5x5 view, epsilon 0.1", CONV),
        "conv_egreedy": Variant("Model 2 with epsilon decaying from 1.0 to 0.01 over training", CONV_EGREEDY),
        "conv_memory": Variant("Model 2 seeing how long ago each visible cell was visited (a fading trace, "
                               "tau 20 moves) instead of a 0/1 mark", CONV_MEMORY),
    },
    run=run,
    max_seed=(MAX_RUN_SEED, "a larger seed's training games would be test or validation games"),
    # The training log's "score" (the mean score of each round of games) tracks the headline while training.
    metric=Metric("mean_score", higher_is_better=True, validation_log="score"),
    # The agent is what a variant is; epsilon stays settable (conv_egreedy is conv with a decaying one).
    identity=("agent",),
    progress_unit="episode",
    throughput_unit="environment steps/s",
)
