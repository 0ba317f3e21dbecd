"""The mouse game (a Gymnasium environment) and deep Q-learning on it, on tiny settings."""

import csv
import json

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dlbench import results, runner
from dlbench.cli import main
from experiments import dqn_mouse
from experiments.mouse_game import CHEESE, EMPTY, POISON, VIEW, MouseGameEnv


@pytest.mark.parametrize("visited_channel", [False, True])
def test_the_game_passes_gymnasiums_checker_and_is_registered(visited_channel):
    game = gymnasium.make("dlbench/MouseGame-v0", visited_channel=visited_channel, render_mode="rgb_array")
    check_env(game.unwrapped, skip_render_check=False)
    observation, _ = game.reset(seed=3)
    assert observation.shape == (5, 5, 3 if visited_channel else 2) and observation.dtype == np.float32


def test_reset_is_deterministic_for_a_seed_and_the_mouse_starts_on_an_empty_cell():
    first, second = MouseGameEnv(), MouseGameEnv()
    first.reset(seed=7)
    second.reset(seed=7)
    assert np.array_equal(first.board, second.board) and first.position == second.position
    assert first.board[first.position] == EMPTY
    other = MouseGameEnv()
    other.reset(seed=8)
    assert not np.array_equal(first.board, other.board)
    playable = first.board[VIEW:-VIEW, VIEW:-VIEW]
    assert playable.shape == (13, 13)
    # Cheese with probability 0.3, otherwise poison with probability 0.3 (0.21 of all cells).
    boards = [MouseGameEnv() for _ in range(50)]
    for seed, game in enumerate(boards):
        game.reset(seed=seed)
    cells = np.concatenate([game.board[VIEW:-VIEW, VIEW:-VIEW].ravel() for game in boards])
    assert abs(np.mean(cells == CHEESE) - 0.3) < 0.03 and abs(np.mean(cells == POISON) - 0.21) < 0.03


def _game_at(row, column, **options):
    game = MouseGameEnv(**options)
    game.reset(seed=0)
    game.board[VIEW:-VIEW, VIEW:-VIEW] = EMPTY
    game.position = (VIEW + row, VIEW + column)
    game.visited[...] = 0
    game.visited[game.position] = 1  # As reset() marks the starting cell.
    return game


def test_a_move_into_the_wall_bounces_back():
    game = _game_at(0, 0)
    _, reward, terminated, truncated, _ = game.step(0)  # Up, into the wall.
    assert game.position == (VIEW, VIEW) and reward == 0.0 and not terminated and not truncated
    game.step(2)  # Left, into the wall.
    assert game.position == (VIEW, VIEW)


def test_rewards_and_eaten_cells_become_empty():
    game = _game_at(5, 5)
    game.board[VIEW + 5, VIEW + 6] = CHEESE
    game.board[VIEW + 6, VIEW + 6] = POISON
    _, reward, _, _, info = game.step(3)  # Right: cheese.
    assert reward == 0.5 and info["score"] == 0.5 and game.board[VIEW + 5, VIEW + 6] == EMPTY
    _, reward, _, _, info = game.step(1)  # Down: poison.
    assert reward == -1.0 and info["cheese_eaten"] == 1 and info["poison_eaten"] == 1


def test_the_visited_penalty_is_in_the_reward_never_in_the_score():
    game = _game_at(5, 5, visited_channel=True, visited_penalty=0.1)
    game.step(3)
    _, reward, _, _, info = game.step(2)  # Back onto a visited, empty cell.
    assert reward == pytest.approx(-0.1) and info["score"] == 0.0
    observation = game.observation()
    assert observation[VIEW, VIEW, 2] == 1.0 and observation[VIEW, VIEW + 1, 2] == 1.0


def test_the_window_at_the_border_shows_the_walls():
    game = _game_at(0, 12)  # Top-right corner.
    observation = game.observation()
    walls = observation[..., 1]
    assert walls[:2].all() and walls[:, 3:].all() and not walls[2:, :3].any()


def test_the_game_ends_at_the_horizon():
    game = MouseGameEnv(horizon=3)
    game.reset(seed=0)
    assert [game.step(0)[2] for _ in range(3)] == [False, False, True]


def test_the_replay_buffer_wraps_around_and_samples_what_it_holds():
    buffer = dqn_mouse.ReplayBuffer(5, (2,))
    for start in (0, 3):
        values = np.arange(start, start + 3, dtype=np.float32)
        buffer.add(np.stack([values, values], 1), values.astype(np.int32), values, np.stack([values, values], 1),
                   np.zeros(3))
    assert buffer.size == 5 and buffer.position == 1
    assert buffer.rewards.tolist() == [5, 1, 2, 3, 4]  # The oldest (0) was overwritten by 5.
    observations, actions, rewards, _, _ = buffer.sample(200, np.random.default_rng(0))
    assert set(rewards.tolist()) == {1, 2, 3, 4, 5} and np.array_equal(observations[:, 0], rewards)


def test_the_bellman_target_bootstraps_except_at_the_end_of_a_game():
    rewards = np.array([0.5, -1.0, 0.0], np.float32)
    next_q = np.array([[1.0, 2.0, 0.0, -1.0], [3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 4.0]], np.float32)
    dones = np.array([0.0, 1.0, 0.0], np.float32)
    targets = np.asarray(dqn_mouse.bellman_targets(rewards, next_q, dones, 0.9))
    np.testing.assert_allclose(targets, [0.5 + 0.9 * 2.0, -1.0, 0.9 * 4.0], rtol=1e-6)


def test_the_double_dqn_target_values_the_online_networks_choice_with_the_target_network():
    rewards, dones = np.zeros(2, np.float32), np.array([0.0, 1.0], np.float32)
    target_next = np.array([[1.0, 5.0], [2.0, 3.0]], np.float32)
    online_next = np.array([[9.0, 0.0], [0.0, 9.0]], np.float32)  # Online picks action 0, then 1.
    targets = np.asarray(dqn_mouse.bellman_targets(rewards, target_next, dones, 0.5, online_next))
    np.testing.assert_allclose(targets, [0.5 * 1.0, 0.0])


def test_a_train_step_moves_q_of_the_taken_action_towards_the_target():
    import keras

    config = dqn_mouse.Config(agent="dense", hidden_units=8, learning_rate=0.05, huber=False)
    online = dqn_mouse.build_q_network(config, (5, 5, 3))
    target = dqn_mouse.build_q_network(config, (5, 5, 3))
    step = dqn_mouse.make_train_step(online, target, keras.optimizers.SGD(0.05), config)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(4, 5, 5, 3)).astype(np.float32)
    actions = np.array([0, 1, 2, 3], np.int32)
    rewards, dones = np.ones(4, np.float32), np.ones(4, np.float32)  # Target = 1 exactly.
    before = np.abs(online(observations).numpy()[np.arange(4), actions] - 1).mean()
    for _ in range(20):
        step(observations, actions, rewards, observations, dones)
    after = np.abs(online(observations).numpy()[np.arange(4), actions] - 1).mean()
    assert after < before / 2


@pytest.mark.parametrize("variant", ["random", "dense", "conv", "conv_egreedy", "conv_memory"])
def test_a_short_run_of_each_variant_writes_a_complete_row(tmp_path, variant):
    status = main(["run", "dqn_mouse", "--variants", variant, "--devices", "cpu", "--no-energy",
                   "--set", "episodes=4 parallel_games=2 horizon=20 warmup_transitions=10 batch_size=8 "
                            "hidden_units=8 conv_filters=4",
                   "--results-dir", str(tmp_path)])
    assert status == 0
    [row] = results.read_records(tmp_path, "dqn_mouse")
    assert row["status"] == "ok" and row["metric"] == "mean_score" and row["progress_unit"] == "episode"
    metrics = json.loads(row["extra_metrics"])
    assert row["metric_value"] == metrics["mean_score"] and "score_epsilon_0_1" in metrics
    assert row["dataset_source"] == "generated" and row["n_test"] == 100
    assert (tmp_path / row["artifacts_dir"] / f"game_{variant}.gif").exists()
    if variant != "random":
        assert row["units_run"] == 4 and row["throughput_unit"] == "environment steps/s"
        assert row["jit_compile"] == "false" and row["parameters"] > 0
        # Two rounds, each validated: the kept weights are those of the better one.
        with open(tmp_path / row["history_file"], newline="") as history:
            validated = [float(entry["validation_score"]) for entry in csv.DictReader(history)]
        assert len(validated) == 2 and metrics["validation_score"] == pytest.approx(max(validated))
        assert metrics["selected_episode"] == 2 * (1 + validated.index(max(validated)))
        assert row["n_validation"] == 100
    else:
        assert row["jit_compile"] == "n/a"


def test_the_fading_trace_shows_how_long_ago_a_cell_was_visited():
    game = _game_at(5, 5, visited_channel=True, visited_memory=10.0)
    for action in (3, 3):  # Right twice: (5, 6), then (5, 7).
        game.step(action)
    trace = game.observation()[..., 2]
    # The mouse stands at (5, 7), the view's centre; it left (5, 6) one move ago and its start (5, 5) two.
    assert trace[VIEW, VIEW] == pytest.approx(1.0)
    assert trace[VIEW, VIEW - 1] == pytest.approx(np.exp(-1 / 10))
    assert trace[VIEW, VIEW - 2] == pytest.approx(np.exp(-2 / 10))
    assert trace[VIEW - 1].max() == 0.0  # Never visited.
    with pytest.raises(ValueError, match="visited_memory"):
        MouseGameEnv(visited_memory=-1.0)


def test_validation_and_test_games_are_disjoint_from_training_games():
    training = {seed * dqn_mouse.TRAINING_SEEDS_PER_RUN_SEED + game
                for seed in (0, dqn_mouse.MAX_RUN_SEED) for game in (0, dqn_mouse.TRAINING_SEEDS_PER_RUN_SEED - 1)}
    test = set(range(dqn_mouse.EVALUATION_SEED, dqn_mouse.EVALUATION_SEED + dqn_mouse.EVALUATION_GAMES))
    validation = set(range(dqn_mouse.VALIDATION_SEED, dqn_mouse.VALIDATION_SEED + dqn_mouse.EVALUATION_GAMES))
    assert max(training) < min(test) and not test & validation
    config = dqn_mouse.Config(agent="random", size=7, horizon=5)
    test_scores = dqn_mouse.play(config, None, epsilon=1.0, seed=0)[0]
    validation_scores = dqn_mouse.play(config, None, epsilon=1.0, seed=0, first_seed=dqn_mouse.VALIDATION_SEED)[0]
    assert not np.array_equal(test_scores, validation_scores)  # Other boards, same random moves.


@pytest.mark.parametrize("seeds", [["--seed", str(dqn_mouse.MAX_RUN_SEED + 1)],
                                   ["--seed", str(dqn_mouse.MAX_RUN_SEED), "--repeats", "2"]])
def test_a_seed_whose_training_games_would_be_test_games_is_refused_before_anything_runs(tmp_path, capsys, seeds):
    status = main(["run", "dqn_mouse", "--variants", "random", *seeds, "--no-energy", "--results-dir", str(tmp_path)])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1
    assert f"takes seeds 0..{dqn_mouse.MAX_RUN_SEED}" in error and "would be test or validation games" in error
    assert not results.read_records(tmp_path, "dqn_mouse")
    # A seed in range plans as usual.
    assert runner.plan("dqn_mouse", ["random"], ["cpu"], {}, seed=dqn_mouse.MAX_RUN_SEED)
