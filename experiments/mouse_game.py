"""The course's mouse game (docs/topics/dqn_mouse.md) as a Gymnasium environment: the world of dqn_mouse.

A mouse walks on a grid of cheese (+0.5 when eaten) and poison (-1 when eaten); an eaten cell
becomes empty. It sees the 5 x 5 window of cells around it and moves up, down, left or right; a
move into the wall bounces back (the mouse stays). The game ends after ``horizon`` moves.

Defaults, chosen so results compare with a published implementation of the same game: a 13 x 13
playable grid inside a 2-cell wall border (so the window is always defined), each cell cheese with
probability 0.3, otherwise poison with probability 0.3, the mouse starting on an empty cell,
200 moves.

Observation: the window as channels, shape (5, 5, 2) or (5, 5, 3): the board (cheese 0.5,
poison -1, empty 0), the walls (1), and with ``visited_channel`` the cells this mouse has already
stood on: 1, or with ``visited_memory`` = tau > 0 a fading trace exp(-age / tau), age = moves since the
mouse last stood there (1 where it stands, 0 where it never stood). The trace tells a mouse whose whole
view is visited which way it has not been lately: a binary mark cannot, and such a mouse loops. ``visited_penalty`` (training only: the evaluation game keeps the true score) costs
that much for each move onto a visited cell that ate nothing: the "exploring" trick, which pushes a
mouse with no food in view towards cells it has not seen. ``info["score"]`` is always the game's
own reward (cheese x 0.5 - poison), whatever the penalty.

This module imports NumPy and Gymnasium only (no TensorFlow).
"""

from __future__ import annotations

import gymnasium
import numpy as np

CHEESE, POISON, EMPTY = 0.5, -1.0, 0.0
ACTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right as (row, column) steps.
ACTION_NAMES = ("up", "down", "left", "right")
VIEW = 2  # Cells seen on each side: a 5 x 5 window.
ENVIRONMENT_ID = "dlbench/MouseGame-v0"


class MouseGameEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, size: int = 13, cheese_probability: float = 0.3, poison_probability: float = 0.3,
                 horizon: int = 200, visited_channel: bool = False, visited_penalty: float = 0.0,
                 visited_memory: float = 0.0, render_mode: str | None = None):
        if size < 1 or horizon < 1:
            raise ValueError("size and horizon must be >= 1")
        if not (0 <= cheese_probability <= 1 and 0 <= poison_probability <= 1):
            raise ValueError("cheese_probability and poison_probability must be in [0, 1]")
        if visited_memory < 0:
            raise ValueError("visited_memory must be >= 0 (0: a binary visited mark)")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.size, self.horizon = size, horizon
        self.cheese_probability, self.poison_probability = cheese_probability, poison_probability
        self.visited_channel, self.visited_penalty = visited_channel, float(visited_penalty)
        self.visited_memory = float(visited_memory)
        self.render_mode = render_mode
        channels = 3 if visited_channel else 2
        self.observation_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2 * VIEW + 1, 2 * VIEW + 1, channels),
                                                      dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(len(ACTIONS))
        side = size + 2 * VIEW
        # The board includes the wall border; walls[r, c] marks it, board holds cheese/poison/empty.
        self.walls = np.ones((side, side), np.float32)
        self.walls[VIEW:-VIEW, VIEW:-VIEW] = 0.0
        self.board = np.zeros((side, side), np.float32)
        self.visited = np.zeros((side, side), np.float32)
        self.last_visit = np.zeros((side, side), np.float32)  # The move at which the mouse last stood there.
        self.position = (VIEW, VIEW)
        self.moves = 0

    # ------------------------------------------------------------------------------ the game
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        random = self.np_random
        draws = random.random((self.size, self.size))
        playable = np.where(draws < self.cheese_probability, CHEESE,
                            np.where(random.random((self.size, self.size)) < self.poison_probability,
                                     POISON, EMPTY)).astype(np.float32)
        self.board[...] = 0.0
        self.board[VIEW:-VIEW, VIEW:-VIEW] = playable
        empty_cells = np.argwhere(playable == EMPTY)
        if len(empty_cells):
            row, column = empty_cells[random.integers(len(empty_cells))]
        else:  # A board full of food: the mouse starts on a cell it then finds empty.
            row, column = random.integers(self.size, size=2)
            self.board[VIEW + row, VIEW + column] = EMPTY
        self.position = (VIEW + int(row), VIEW + int(column))
        self.visited[...] = 0.0
        self.visited[self.position] = 1.0
        self.last_visit[...] = 0.0
        self.moves = 0
        self.cheese_eaten = self.poison_eaten = 0
        return self.observation(), {"score": 0.0}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be one of 0..{len(ACTIONS) - 1} ({', '.join(ACTION_NAMES)}), got {action!r}")
        row_step, column_step = ACTIONS[int(action)]
        row, column = self.position[0] + row_step, self.position[1] + column_step
        if self.walls[row, column]:
            row, column = self.position  # Bounce back: the move is spent, the mouse stays.
        self.position = (row, column)
        score = float(self.board[row, column])
        self.board[row, column] = EMPTY  # Eaten.
        self.cheese_eaten += score == CHEESE
        self.poison_eaten += score == POISON
        reward = score
        if score == EMPTY and self.visited[row, column]:
            reward -= self.visited_penalty
        self.visited[row, column] = 1.0
        self.moves += 1
        self.last_visit[row, column] = self.moves
        # The horizon is part of the game (the course's finite horizon T): the episode terminates,
        # so the Bellman target does not bootstrap past it.
        terminated = self.moves >= self.horizon
        info = {"score": score, "cheese_eaten": self.cheese_eaten, "poison_eaten": self.poison_eaten}
        return self.observation(), reward, terminated, False, info

    def observation(self) -> np.ndarray:
        row, column = self.position
        window = (slice(row - VIEW, row + VIEW + 1), slice(column - VIEW, column + VIEW + 1))
        channels = [self.board[window], self.walls[window]]
        if self.visited_channel:
            if self.visited_memory:
                age = self.moves - self.last_visit[window]
                channels.append(self.visited[window] * np.exp(-age / self.visited_memory))
            else:
                channels.append(self.visited[window])
        return np.stack(channels, axis=-1).astype(np.float32)

    # ------------------------------------------------------------------------------ pictures
    def render(self):
        if self.render_mode != "rgb_array":
            return None
        colours = np.empty(self.board.shape + (3,), np.uint8)
        colours[...] = (235, 235, 235)  # Empty floor.
        colours[self.visited > 0] = (205, 215, 235)
        colours[self.board == CHEESE] = (250, 200, 40)
        colours[self.board == POISON] = (150, 40, 160)
        colours[self.walls > 0] = (60, 60, 60)
        colours[self.position] = (220, 30, 30)  # The mouse.
        cell = 12
        return np.kron(colours, np.ones((cell, cell, 1), np.uint8))


def register() -> None:
    """Make ``gymnasium.make("dlbench/MouseGame-v0", ...)`` available (idempotent)."""
    if ENVIRONMENT_ID not in gymnasium.registry:
        gymnasium.register(ENVIRONMENT_ID, entry_point=MouseGameEnv, max_episode_steps=None)


register()
