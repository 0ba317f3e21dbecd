"""sentiment_imdb on the shipped sample of real reviews: every variant's row, the saved model on raw
text, masking, `dlbench predict`, the BERT wiring with a tiny backbone and the skipped path."""

import dataclasses
import json

import numpy as np
import pytest

from dlbench import results
from dlbench.cli import main
from experiments import sentiment_imdb

TINY = ("epochs=2 vocabulary_size=500 sequence_length=40 embedding_dim=8 recurrent_units=4 hidden_units=4 "
        "batch_size=64 train_subset=400")
# One variant per code path through run(): a recurrent layer (simple_rnn, lstm and bigru swap only the layer,
# built by the padding test below), TF-IDF, the bigram bag, and the transformer reading the review's end.
SMOKE_VARIANTS = ["gru", "bow_bigrams", "bigram_bag", "transformer_tail"]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory, offline_module):
    """One `dlbench run` of the smoke variants, shared by the tests below."""
    results_dir = tmp_path_factory.mktemp("imdb_results")
    status = main(["run", "sentiment_imdb", "--variants", ",".join(SMOKE_VARIANTS), "--devices", "cpu",
                   "--no-energy", "--set", TINY, "--results-dir", str(results_dir)])
    return status, results_dir


def test_every_variant_writes_a_complete_row_and_saves_its_model(smoke_results):
    status, results_dir = smoke_results
    assert status == 0
    rows = {row["variant"]: row for row in results.read_records(results_dir, "sentiment_imdb")}
    assert set(rows) == set(SMOKE_VARIANTS)
    for variant, row in rows.items():
        assert row["status"] == "ok" and row["dataset_source"] == "sample", variant
        # The sample's 2,000 training reviews: validation_fraction of them held out, 400 of the rest trained on.
        held_out = round(sentiment_imdb.EXPERIMENT.variants[variant].config.validation_fraction * 2000)
        assert (row["n_train"], row["n_validation"], row["n_test"]) == (400, held_out, 500)
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["metric_value"] == row["test_accuracy"]
        metrics = json.loads(row["extra_metrics"])
        assert {"precision", "recall", "f1", "roc_auc", "probe_great", "probe_terrible", "ece", "ece_uncalibrated",
                "temperature", "test_log_loss", "test_log_loss_uncalibrated"} <= set(metrics)
        assert 0 <= metrics["ece"] <= 0.5 and 0.05 <= metrics["temperature"] <= 20
        assert row["throughput_unit"] == "tokens/s" and row["units_run"] == 2 and row["throughput"] > 0
        assert (results_dir / row["artifacts_dir"] / sentiment_imdb.MODEL_FILE).exists()


def test_the_saved_model_takes_raw_text_after_reloading(smoke_results):
    _, results_dir = smoke_results
    [row] = [r for r in results.read_records(results_dir, "sentiment_imdb") if r["variant"] == "gru"]
    model = sentiment_imdb.load_model(results_dir / row["artifacts_dir"] / sentiment_imdb.MODEL_FILE)
    probability = sentiment_imdb.predict_sentiment(model, "This film is great")
    assert 0.0 < probability < 1.0
    assert probability == pytest.approx(json.loads(row["extra_metrics"])["probe_great"], abs=1e-5)


def test_predict_command_prints_one_probability_per_sentence(smoke_results, capsys):
    _, results_dir = smoke_results
    assert main(["predict", "sentiment_imdb", "This film is terrible", "This film is great",
                 "--results-dir", str(results_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("\tThis film is terrible")
    assert all(0.0 <= float(line.split("\t")[0]) <= 1.0 for line in lines)


def test_predict_without_a_saved_model_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["predict", "sentiment_imdb", "great", "--results-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "dlbench run sentiment_imdb --variants gru" in error


@pytest.mark.parametrize("variant", ["gru", "simple_rnn", "lstm", "bigru", "transformer", "bigram_bag"])
def test_padding_does_not_change_a_prediction(variant):
    config = dataclasses.replace(sentiment_imdb.EXPERIMENT.variants[variant].config, vocabulary_size=50,
                                 sequence_length=30, embedding_dim=8, recurrent_units=4, hidden_units=4)
    model = sentiment_imdb.build_model(config)
    ids = np.array([[5, 9, 3, 17, 2, 0, 0, 0, 0, 0]], np.int64)
    padded = np.concatenate([ids, np.zeros((1, 15), np.int64)], axis=1)
    np.testing.assert_allclose(model(ids).numpy(), model(padded).numpy(), rtol=1e-5, atol=1e-6)
    changed = ids.copy()
    changed[0, 1] = 11
    assert not np.allclose(model(ids).numpy(), model(changed).numpy())  # Real tokens do matter.


def test_classification_metrics_on_known_inputs():
    metrics = sentiment_imdb.classification_metrics([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1])
    assert metrics == pytest.approx({"accuracy": 0.75, "precision": 2 / 3, "recall": 1.0, "f1": 0.8,
                                     "roc_auc": 0.875})


def test_bert_gru_wiring_with_a_tiny_random_backbone():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=1, num_heads=1, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    config = dataclasses.replace(sentiment_imdb.EXPERIMENT.variants["bert_gru"].config, recurrent_units=4)
    model = sentiment_imdb.build_bert_gru(backbone, config)
    inputs = {"token_ids": np.array([[2, 5, 7, 3, 0, 0]], np.int32), "segment_ids": np.zeros((1, 6), np.int32),
              "padding_mask": np.array([[1, 1, 1, 1, 0, 0]], np.int32)}
    output = model(inputs).numpy()
    assert output.shape == (1, 1) and 0 < output[0, 0] < 1
    assert not backbone.trainable and all(not weight.trainable for weight in backbone.weights)
    # Only the head trains: the GRU's kernel, recurrent kernel and bias, the Dense kernel and bias.
    assert len(model.trainable_weights) == 5
    assert not {id(weight) for weight in model.trainable_weights} & {id(weight) for weight in backbone.weights}


def test_bert_gru_without_weights_is_skipped_with_one_line(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("DLBENCH_BERT_PRESET", raising=False)
    status = main(["run", "sentiment_imdb", "--variants", "bert_gru", "--devices", "cpu", "--no-energy",
                   "--set", "train_subset=100", "--results-dir", str(tmp_path)])
    assert status == 0
    [row] = results.read_records(tmp_path, "sentiment_imdb")
    assert row["status"] == "skipped" and "cannot be downloaded here" in row["error"]
    assert "DLBENCH_BERT_PRESET" in capfd.readouterr().err


def test_a_vocabulary_with_odd_separators_saves_and_loads(tmp_path):
    # Real reviews hold \x85, \u2028, \r...: a token holding one split the saved one-per-line vocabulary.
    texts = np.array(["good\u2028film", "bad\x85plot ok", "great\r\nacting", "awful\u00a0movie"] * 4, dtype=object)
    config = dataclasses.replace(sentiment_imdb.EXPERIMENT.variants["gru"].config, vocabulary_size=50,
                                 sequence_length=8, embedding_dim=4, recurrent_units=2)
    vectorizer = sentiment_imdb.make_vectorizer(config, texts)
    assert all(token == token.strip() and token for token in vectorizer.get_vocabulary()[1:])
    model = sentiment_imdb.build_model(config)
    model(np.zeros((1, 8), np.int64))
    text_model = sentiment_imdb.export_model(vectorizer, model)
    text_model.save(tmp_path / "model.keras")
    loaded = sentiment_imdb.load_model(tmp_path / "model.keras")
    assert sentiment_imdb.predict_sentiments(loaded, ["good film"]) == pytest.approx(
        sentiment_imdb.predict_sentiments(text_model, ["good film"]), abs=1e-6)


def test_bigram_bag_reads_unigram_and_bigram_ids():
    config = dataclasses.replace(sentiment_imdb.EXPERIMENT.variants["bigram_bag"].config, vocabulary_size=100,
                                 sequence_length=12)
    texts = np.array(["not good at all", "very good film", "not bad", "good film"] * 3, dtype=object)
    vectorizer = sentiment_imdb.make_vectorizer(config, texts)
    vocabulary = vectorizer.get_vocabulary()
    assert {"good", "film", "good film", "not good", "not bad"} <= set(vocabulary)
    ids = vectorizer(np.array(["not good"], dtype=object)).numpy()[0]
    assert ids.shape == (12,)
    assert [vocabulary[i] for i in ids[:3]] == ["not", "good", "not good"] and not ids[3:].any()


def test_the_temperature_is_saved_with_the_model_and_used_by_predict(tmp_path):
    from dlbench.metrics import scaled_probabilities

    texts = np.array(["good film", "bad film", "great acting", "awful plot"] * 4, dtype=object)
    config = dataclasses.replace(sentiment_imdb.EXPERIMENT.variants["gru"].config, vocabulary_size=50,
                                 sequence_length=8, embedding_dim=4, recurrent_units=2)
    vectorizer = sentiment_imdb.make_vectorizer(config, texts)
    model = sentiment_imdb.build_model(config)
    model(np.zeros((1, 8), np.int64))
    model.layers[-1].bias.assign([2.5])  # A confident model, so that the temperature visibly matters.
    raw = sentiment_imdb.predict_sentiments(sentiment_imdb.export_model(vectorizer, model), ["good film", "bad film"])
    sentiment_imdb.export_model(vectorizer, model, temperature=3.0).save(tmp_path / "model.keras")
    loaded = sentiment_imdb.load_model(tmp_path / "model.keras")
    calibrated = sentiment_imdb.predict_sentiments(loaded, ["good film", "bad film"])
    assert calibrated == pytest.approx(list(scaled_probabilities(raw, 3.0)), abs=1e-5)
    assert all(0.5 < c < r for c, r in zip(calibrated, raw))  # Softer, same side of 0.5.


def test_calibration_metrics_fit_the_temperature_on_validation_only():
    rng = np.random.default_rng(0)
    # An over-confident model: the true log-odds are z, it answers sigmoid(3 z).
    z = rng.normal(0, 1.5, 20_000)
    labels = rng.random(20_000) < 1 / (1 + np.exp(-z))
    over_confident = 1 / (1 + np.exp(-3 * z))
    half = 10_000
    metrics = sentiment_imdb.calibration_metrics(labels[:half], over_confident[:half], labels[half:], over_confident[half:])
    assert metrics["temperature"] == pytest.approx(3.0, rel=0.08)
    assert metrics["ece"] < 0.02 < metrics["ece_uncalibrated"]
    assert metrics["test_log_loss"] < metrics["test_log_loss_uncalibrated"]


def test_read_end_keeps_the_last_tokens_of_a_long_review():
    config = dataclasses.replace(sentiment_imdb.EXPERIMENT.variants["transformer_tail"].config, vocabulary_size=50,
                                 sequence_length=3)
    texts = np.array(["one two three four five", "six seven", "one two three four five six seven"], dtype=object)
    vectorizer = sentiment_imdb.make_vectorizer(config, texts)
    vocabulary = vectorizer.layers[0].get_vocabulary()
    ids = np.asarray(vectorizer(np.array(["one two three four five", "six seven"], dtype=object)))
    assert [[vocabulary[i] for i in row if i] for row in ids] == [["three", "four", "five"], ["six", "seven"]]
    assert ids.shape == (2, 3) and ids[1, 2] == 0  # A short review is padded at its end.
    assert sentiment_imdb.vocabulary_size(vectorizer) == len(vocabulary)
    with pytest.raises(ValueError, match="sequence models"):
        dataclasses.replace(sentiment_imdb.EXPERIMENT.variants["bigram_bag"].config, read="end").validate()
