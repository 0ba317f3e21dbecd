"""
Sentiment of IMDB movie reviews with a GRU (docs/topics/sentiment_imdb.md), beside a simple RNN, an LSTM, a
bidirectional GRU, two bag-of-bigrams baselines, a transformer encoder block and BERT + GRU.

Raw review text in, the probability that the review is positive out. The reviews are tokenised by
`keras.layers.TextVectorization` adapted on the training split only (vocabulary and sequence length
in the config: 20,000 words and 400 tokens, which keep all of most reviews; keras-io keeps 200); the
saved model (an artifact of each run) holds the vectoriser, so `predict_sentiment(model, "This film is
great")` and `dlbench predict sentiment_imdb "..."` take plain sentences. 20 % of the training reviews are held
out for validation (the course's split, early stopping on its loss with the best weights kept); the
official 25,000 test reviews, of other movies than the training ones, are evaluated once at the end,
so expect the test accuracy 1-2 points below the validation accuracy.

Variants, each chosen by the config's `model` field (what a variant is: --set refuses it):
`gru` (the course's model: embedding -> GRU -> sigmoid), `simple_rnn` (the short memory
the course warns about), `lstm`, `bigru` (bidirectional GRU), `bow_bigrams` (TF-IDF of unigrams and
bigrams into a small dense network: the baseline every text classifier should beat), `bigram_bag`
(fastText, Joulin et al. 2016: an embedding of every unigram and bigram of the review, averaged, then
one sigmoid unit; Keras' classic imdb_fasttext example reached 90.4-90.6 % with it),
`transformer` (one encoder block from the course's attention slides: token + position embeddings,
multi-head self-attention softmax(QK^T / sqrt(d_k)) V, feed-forward, layer norm, residuals, pooling,
at keras-io's sizes), `transformer_tail` (the same reading the last 200 tokens of a review, where the
verdict often is, as keras-io's pad_sequences does, instead of the first 200)
and `bert_gru` (a frozen pretrained BERT encoder + GRU head, via keras-hub; pretrained weights cannot
be downloaded without internet: a local preset directory is needed, else the run is `skipped`).
Padding is masked (`mask_zero=True`), so recurrent layers, attention and averages never read it.

Calibration: a network trained to a low loss answers near 0 or 1 even on four words it has barely seen.
After training, one temperature T is fitted on the validation split (the log loss of sigmoid(logit(p)/T),
dlbench.metrics.fit_temperature); the saved model ends with that scaling, so `predict` and the probe
sentences answer calibrated probabilities. Each row records T, and the test set's expected calibration
error (10 bins) before (`ece_uncalibrated`) and after (`ece`). The predicted class, hence accuracy,
does not change.

Measured figures (test accuracy per variant, probe sentences) are not typed here: docs/measurements.md
(generated) and `dlbench compare sentiment_imdb` generate them from the run records, one
table per machine with n, spread and contention. simple_rnn is unstable from seed to seed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from dlbench.experiment import DamagedModelError, Experiment, Metric, Variant
from dlbench.metrics import precision_recall_f1, roc_auc

# Keras and TensorFlow are imported inside the functions that use them.
DATASET = "imdb"
ModelName = Literal["gru", "simple_rnn", "lstm", "bigru", "bow_bigrams", "bigram_bag", "transformer", "bert_gru"]
MODELS = typing.get_args(ModelName)
RECURRENT = ("gru", "simple_rnn", "lstm", "bigru")
# Probe sentences: their probabilities are stored in every row, so rows compare on the same inputs.
PROBES = {
    "probe_terrible": "This film is terrible",
    "probe_great": "This film is great",
    "probe_boring": "A boring, predictable plot and wooden acting.",
    "probe_masterpiece": "An absolute masterpiece, moving and beautifully shot.",
}
MODEL_FILE = "model.keras"
BERT_PRESET_VARIABLE = "DLBENCH_BERT_PRESET"


@dataclasses.dataclass(frozen=True)
class Config:
    # The classifier: a recurrent network (gru, simple_rnn, lstm, bigru), the TF-IDF bag of bigrams,
    # the averaged embedding of unigrams and bigrams (bigram_bag), one transformer encoder block, or a
    # frozen BERT with a GRU head.
    model: ModelName = "gru"
    vocabulary_size: int = 20_000
    # Tokens kept per review (longer reviews are cut): 400 keeps all of most reviews (they average
    # about 230 words); with 200 the GRU reached 84.6 % test accuracy, with 400 86.2 %.
    sequence_length: int = 400
    # Of a longer review, the tokens read: its start, or its end (where the verdict often is; what
    # keras-io's pad_sequences keeps). Sequence models only.
    read: Literal["start", "end"] = "start"
    embedding_dim: int = 128
    recurrent_units: int = 64
    dropout: float = 0.5  # Before the output layer (and inside the transformer block).
    # Recurrent models: drops whole embedding channels (SpatialDropout1D) against the overfitting that
    # starts at epoch 3 (with 0.3 and embedding_dim=128: 86.9 % instead of 86.2 %).
    embedding_dropout: float = 0.3
    # Recurrent models: "last" reads the final state (the course's model), "max" the maximum of every
    # step's output over the review (a strong word anywhere counts, short sentences included).
    recurrent_output: str = "last"
    hidden_units: int = 16  # bow_bigrams' dense layer; the transformer's feed-forward width is 2x this.
    attention_heads: int = 2
    epochs: int = 5
    batch_size: int = 64
    # adam, or adagrad, whose update of an embedding touches only the rows a batch used (Keras' Adam
    # updates every row of bigram_bag's 500,000-row embedding at every step: 10x slower).
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    cosine_decay: bool = False  # Learning rate decayed to 0 over `epochs` epochs along a cosine (else constant).
    early_stopping_patience: int = 1  # Epochs without a lower validation loss; the best weights are kept.
    validation_fraction: float = 0.2
    train_subset: int = 0  # Train on the first N shuffled training reviews (0: all).
    bert_preset: str = ""  # A keras-hub preset directory (or name in the hub cache); default $DLBENCH_BERT_PRESET.
    jit_compile: bool = False

    def validate(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model '{self.model}'; valid: {', '.join(MODELS)}")
        if min(self.vocabulary_size, self.sequence_length, self.embedding_dim, self.recurrent_units,
               self.hidden_units, self.attention_heads, self.epochs, self.batch_size) < 1:
            raise ValueError("sizes, epochs and batch_size must be >= 1")
        if not 0 <= self.dropout < 1 or not 0 <= self.embedding_dropout < 1 or not 0 < self.validation_fraction < 1:
            raise ValueError("dropout and embedding_dropout must be in [0, 1), validation_fraction in (0, 1)")
        if self.recurrent_output not in ("last", "max"):
            raise ValueError("recurrent_output must be last or max")
        if self.read not in ("start", "end"):
            raise ValueError("read must be start or end")
        if self.read == "end" and self.model in ("bow_bigrams", "bigram_bag", "bert_gru"):
            raise ValueError(f"read=end is for sequence models; {self.model} reads the whole review")
        if self.optimizer not in ("adam", "adagrad"):
            raise ValueError("optimizer must be adam or adagrad")
        if self.learning_rate <= 0 or self.early_stopping_patience < 0 or self.train_subset < 0:
            raise ValueError("learning_rate must be > 0, early_stopping_patience and train_subset >= 0")


# ------------------------------------------------------------------------------------ Prepare the data


def split(dataset, config: Config, seed: int):
    """Shuffled (the file is sorted by label) 80/20 train/validation split of the training reviews."""
    order = np.random.default_rng(seed).permutation(len(dataset.x_train))
    n_validation = int(round(config.validation_fraction * len(order)))
    validation, train = order[:n_validation], order[n_validation:]
    if config.train_subset:
        train = train[:config.train_subset]
    return ((dataset.x_train[train], dataset.y_train[train]),
            (dataset.x_train[validation], dataset.y_train[validation]))


def make_vectorizer(config: Config, texts):
    """TextVectorization adapted on the training texts only: word ids (padded with 0) for sequence
    models, TF-IDF of unigrams and bigrams for the bag of words, ids of the unigrams then the bigrams
    (the `vocabulary_size` most frequent of both) for bigram_bag."""
    import keras
    import tensorflow as tf

    from experiments.sentiment_layers import standardize_review

    if config.model == "bow_bigrams":
        vectorizer = keras.layers.TextVectorization(max_tokens=config.vocabulary_size, ngrams=2,
                                                    output_mode="tf_idf", standardize=standardize_review)
    elif config.model == "bigram_bag":
        vectorizer = keras.layers.TextVectorization(max_tokens=config.vocabulary_size, ngrams=2,
                                                    output_sequence_length=config.sequence_length,
                                                    standardize=standardize_review)
    else:
        vectorizer = keras.layers.TextVectorization(
            max_tokens=config.vocabulary_size, standardize=standardize_review,
            # read=end: every id, then the last sequence_length of them (LastTokens).
            output_sequence_length=config.sequence_length if config.read == "start" else None)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
    if config.read == "end":
        from experiments.sentiment_layers import LastTokens

        return keras.Sequential([vectorizer, LastTokens(config.sequence_length)], name="vectorizer_last_tokens")
    return vectorizer


def vocabulary_size(vectorizer) -> int:
    """Ids the vectoriser can output (its TextVectorization's, also inside a read=end Sequential)."""
    return (vectorizer if hasattr(vectorizer, "vocabulary_size") else vectorizer.layers[0]).vocabulary_size()


def make_pipeline(texts, labels, vectorizer, config: Config, training: bool = False, seed: int = 0):
    """Raw texts -> (vectorised batch, labels); shuffled when training. Token ids are computed once and
    cached (bigram_bag's bigrams cost seconds per pass); the bag of words and BERT's inputs are
    vectorised per batch instead: 20,000 TF-IDF floats per review would take 1.6 GB for the training split."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((texts, labels.astype(np.float32)))
    if config.model not in ("bow_bigrams", "bert_gru"):
        data = data.batch(1024).map(lambda x, y: (vectorizer(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        # unbatch() forgets the size; asserting it lets fit() know each epoch's length (no "ran out of data").
        data = data.unbatch().apply(tf.data.experimental.assert_cardinality(len(texts))).cache()
        if training:
            data = data.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
        return data.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)
    if training:
        data = data.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(config.batch_size).map(lambda x, y: (vectorizer(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def token_count(texts, config: Config) -> int:
    """Words a model reads per pass over ``texts`` (whitespace words, cut at sequence_length for
    sequence models): the numerator of the tokens/s throughput."""
    if config.model in ("bow_bigrams", "bigram_bag"):
        return sum(len(text.split()) for text in texts)
    return sum(min(len(text.split()), config.sequence_length) for text in texts)


# ----------------------------------------------------------------------------------- Build the model


def transformer_block(inputs, config: Config):
    """One encoder block of the course's attention slides: self-attention softmax(QK^T/sqrt(d_k))V
    over the tokens, then a position-wise feed-forward network, each with a residual connection and
    layer normalisation. The padding mask arrives with ``inputs`` and is applied by the attention."""
    import keras

    attention = keras.layers.MultiHeadAttention(num_heads=config.attention_heads,
                                                key_dim=config.embedding_dim // config.attention_heads)
    attended = keras.layers.Dropout(config.dropout)(attention(inputs, inputs))
    hidden = keras.layers.LayerNormalization(epsilon=1e-6)(keras.layers.Add()([inputs, attended]))
    feed_forward = keras.layers.Dense(2 * config.hidden_units, activation="relu")(hidden)
    feed_forward = keras.layers.Dropout(config.dropout)(keras.layers.Dense(config.embedding_dim)(feed_forward))
    return keras.layers.LayerNormalization(epsilon=1e-6)(keras.layers.Add()([hidden, feed_forward]))


def build_model(config: Config, features: int | None = None, name: str | None = None):
    """The classifier ``config.model`` on vectorised input: word ids (any length) or a TF-IDF vector of
    ``features`` values (the vectoriser's vocabulary size, at most config.vocabulary_size). ``name``
    labels the Keras model (default: the model's name)."""
    import keras

    from experiments.sentiment_layers import TokenAndPositionEmbedding

    name = name or config.model
    if config.model == "bow_bigrams":
        inputs = keras.Input(shape=(features or config.vocabulary_size,))
        hidden = keras.layers.Dense(config.hidden_units, activation="relu")(inputs)
        hidden = keras.layers.Dropout(config.dropout)(hidden)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden), name=name)
    inputs = keras.Input(shape=(None,), dtype="int64")
    if config.model == "bigram_bag":
        # fastText: the mean of the review's unigram and bigram embeddings (padding masked out), then
        # a linear classifier; no hidden layer, no dropout.
        embedded = keras.layers.Embedding(features or config.vocabulary_size, config.embedding_dim,
                                          mask_zero=True)(inputs)
        average = keras.layers.GlobalAveragePooling1D()(embedded)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(average), name=name)
    if config.model in RECURRENT:
        # mask_zero: id 0 is padding; the mask travels with the embeddings, so the recurrent layer
        # skips the padded steps.
        embedded = keras.layers.Embedding(config.vocabulary_size, config.embedding_dim, mask_zero=True)(inputs)
        if config.embedding_dropout:
            embedded = keras.layers.SpatialDropout1D(config.embedding_dropout)(embedded)
        every_step = config.recurrent_output == "max"
        layer = {"gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
                 "bigru": keras.layers.GRU}[config.model](config.recurrent_units, return_sequences=every_step)
        hidden = keras.layers.Bidirectional(layer)(embedded) if config.model == "bigru" else layer(embedded)
        if every_step:
            hidden = keras.layers.GlobalMaxPooling1D()(hidden)  # Padded steps are masked out.
    elif config.model == "transformer":
        embedded = TokenAndPositionEmbedding(config.sequence_length, config.vocabulary_size,
                                             config.embedding_dim)(inputs)
        hidden = keras.layers.GlobalAveragePooling1D()(transformer_block(embedded, config))
    else:
        raise ValueError(f"build_model cannot build model '{config.model}' (bert_gru: build_bert_gru)")
    hidden = keras.layers.Dropout(config.dropout)(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden), name=name)


def bert_preset(config: Config) -> str:
    """The local BERT preset to use, or RunSkipped saying how to provide one: pretrained weights
    cannot be downloaded without internet, and random weights must never stand in for BERT."""
    from dlbench.tracking import RunSkipped

    preset = config.bert_preset or os.environ.get(BERT_PRESET_VARIABLE, "")
    how = (f"put a keras-hub BERT preset directory (e.g. bert_base_en_uncased from Kaggle, or saved with "
           f"save_to_preset) on this machine and pass --set bert_preset=DIR or set {BERT_PRESET_VARIABLE}=DIR")
    if not preset:
        raise RunSkipped(f"bert_gru needs pretrained BERT weights, which cannot be downloaded here: {how}")
    try:
        import keras_hub  # noqa: F401  Only whether it is installed.
    except ImportError:
        raise RunSkipped("bert_gru needs keras-hub: pip install 'dlbench[bert]'") from None
    if not os.path.isdir(preset) and "://" not in preset:
        # A preset name: only usable if keras-hub already has it in its cache (no download here).
        from dlbench.data import keras_cache_dir

        cached = [path for path in keras_cache_dir().parent.glob(f"**/{preset}") if path.is_dir()]
        if not cached:
            raise RunSkipped(f"BERT preset '{preset}' is neither a directory nor in the local cache: {how}")
        preset = str(cached[0])
    return preset


def build_bert_gru(backbone, config: Config):
    """A frozen BERT encoder, a GRU over its token outputs (padding masked) and a sigmoid."""
    import keras

    backbone.trainable = False
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    sequence = backbone(inputs)["sequence_output"]
    hidden = keras.layers.GRU(config.recurrent_units)(sequence, mask=keras.ops.cast(inputs["padding_mask"], "bool"))
    hidden = keras.layers.Dropout(config.dropout)(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden), name="bert_gru")


# ------------------------------------------------------------------------------------------------ Train


def train(model, train_data, validation_data, config: Config, record, steps_per_epoch: int) -> None:
    import keras

    learning_rate = config.learning_rate
    if config.cosine_decay:
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch)

    if config.optimizer == "adagrad":
        # Keras starts Adagrad's accumulators at 0.1: with the tiny gradients an average over a thousand
        # tokens gives each embedding row (~1e-6), the first steps would then be 1e-5 times too short.
        optimizer = keras.optimizers.Adagrad(learning_rate, initial_accumulator_value=1e-12)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(optimizer=optimizer, loss="binary_crossentropy",
                  metrics=["accuracy"], jit_compile=config.jit_compile)
    callbacks = [record.keras_callback()]
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience,
                                                       restore_best_weights=True))
    # shuffle=False: the tf.data pipeline reshuffles every epoch itself.
    model.fit(train_data, validation_data=validation_data, epochs=config.epochs, shuffle=False, verbose=0,
              callbacks=callbacks)


# --------------------------------------------------------------------------------------------- Evaluate


def classification_metrics(labels, probabilities) -> dict[str, float]:
    """Accuracy, precision, recall and F1 at 0.5, and ROC AUC (the probability that a positive review
    scores above a negative one, ties counting half)."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(probabilities).ravel() >= 0.5
    counts = precision_recall_f1(np.sum(predicted & labels), np.sum(predicted), np.sum(labels))
    return {"accuracy": float(np.mean(predicted == labels)), **counts, "roc_auc": float(roc_auc(labels, probabilities))}


def calibration_metrics(validation_labels, validation_probabilities, test_labels, test_probabilities):
    """The temperature fitted on the validation split and what it does on the test set: ECE (10 bins)
    and log loss before and after."""
    from dlbench.metrics import binary_log_loss, expected_calibration_error, fit_temperature, scaled_probabilities

    temperature = fit_temperature(validation_labels, validation_probabilities)
    calibrated = scaled_probabilities(test_probabilities, temperature)
    return {"temperature": temperature,
            "ece": expected_calibration_error(test_labels, calibrated),
            "ece_uncalibrated": expected_calibration_error(test_labels, test_probabilities),
            "test_log_loss": binary_log_loss(test_labels, calibrated),
            "test_log_loss_uncalibrated": binary_log_loss(test_labels, test_probabilities)}


def export_model(vectorizer, model, temperature: float = 1.0):
    """The trained classifier with its vectoriser in front and its temperature behind: raw strings in,
    calibrated probabilities out."""
    import keras

    from experiments.sentiment_layers import TemperatureScaling

    texts = keras.Input(shape=(), dtype="string")  # A batch of strings, one review each.
    probabilities = TemperatureScaling(temperature)(model(vectorizer(texts)))
    return keras.Model(texts, probabilities, name=f"{model.name}_on_text")


def predict_sentiment(model, text: str) -> float:
    """The probability that ``text`` is a positive review, from a model saved by this experiment."""
    return predict_sentiments(model, [text])[0]


def predict_sentiments(model, texts: list[str]) -> list[float]:
    import tensorflow as tf

    # A string tensor: Keras' predict() cannot take NumPy's object arrays of str.
    return [float(p) for p in np.asarray(model(tf.constant([str(text) for text in texts]), training=False)).ravel()]


def load_model(path):
    """The saved model; DamagedModelError (one line) when the file is there but is no loadable model."""
    import keras

    import experiments.sentiment_layers  # noqa: F401  Registers the custom pieces before loading.

    if not zipfile.is_zipfile(path):  # Keras would say "File not found" for a file that is there.
        raise DamagedModelError(f"model file {path} is damaged (not a whole .keras archive: "
                                f"{Path(path).stat().st_size:,} bytes)")
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001 - Keras raises ValueError, OSError, BadZipFile, KeyError...
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise DamagedModelError(f"model file {path} is damaged ({type(error).__name__}: {reason})") from None


def predict_from_artifacts(artifacts_dir, texts: list[str], out_dir=None) -> list[float]:
    """What `dlbench predict sentiment_imdb TEXT...` calls with the artifacts of a finished run: the
    calibrated probability of each text (``out_dir`` is unused: nothing is written)."""

    path = Path(artifacts_dir) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"no saved model in {artifacts_dir}")
    if not path.is_file():
        raise DamagedModelError(f"model file {path} is damaged (a directory, not a .keras file)")
    return predict_sentiments(load_model(path), texts)


# -------------------------------------------------------------------------------------------------- Run


def run(config: Config, variant: str, record) -> None:
    preset = bert_preset(config) if config.model == "bert_gru" else None  # Skipped at once without weights.
    dataset = record.load_data(DATASET)
    with record.phase("data"):
        (x_train, y_train), (x_validation, y_validation) = split(dataset, config, record.seed)
        if config.model == "bert_gru":
            import keras_hub

            preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
                preset, sequence_length=config.sequence_length)
            vectorizer = lambda texts: preprocessor(texts)  # noqa: E731  Dict of BERT inputs.
        else:
            vectorizer = make_vectorizer(config, x_train)
        train_data = make_pipeline(x_train, y_train, vectorizer, config, training=True, seed=record.seed)
        validation_data = make_pipeline(x_validation, y_validation, vectorizer, config)
        test_data = make_pipeline(dataset.x_test, dataset.y_test, vectorizer, config)
    record.set(n_train=len(x_train), n_validation=len(x_validation), n_test=len(dataset.x_test))
    record.expect_units(config.epochs, items_per_unit=token_count(x_train, config))

    with record.phase("build"):
        if config.model == "bert_gru":
            import keras_hub

            model = build_bert_gru(keras_hub.models.BertBackbone.from_preset(preset), config)
        else:
            model = build_model(config, features=vocabulary_size(vectorizer), name=variant)
    record.set(parameters=model.count_params())

    with record.phase("train", training=True):
        train(model, train_data, validation_data, config, record, steps_per_epoch=math.ceil(len(x_train) / config.batch_size))

    with record.phase("eval"):
        test_loss, test_accuracy = model.evaluate(test_data, verbose=0)
        probabilities = model.predict(test_data, verbose=0)
        validation_probabilities = model.predict(validation_data, verbose=0)
    metrics = classification_metrics(dataset.y_test, probabilities)
    calibration = calibration_metrics(y_validation, validation_probabilities, dataset.y_test, probabilities)
    record.set(test_accuracy=float(test_accuracy), test_loss=float(test_loss))
    record.add_metrics(**{key: value for key, value in metrics.items() if key != "accuracy"}, **calibration)
    if config.model != "bert_gru":
        text_model = export_model(vectorizer, model, calibration["temperature"])
        record.add_metrics(**dict(zip(PROBES, predict_sentiments(text_model, list(PROBES.values())))))
        text_model.save(record.artifact_path(MODEL_FILE))


BASE = Config(model="gru")
EXPERIMENT = Experiment(
    title="Sentiment of IMDB reviews: GRU (the course's model), simple RNN, LSTM, bidirectional GRU, "
          "TF-IDF bigrams, a fastText bag of bigrams, a transformer block, BERT + GRU",
    dataset=DATASET,
    variants={
        "gru": Variant("the course's model: embedding -> GRU(64) -> sigmoid", BASE),
        "simple_rnn": Variant("the same with a SimpleRNN: the short memory the course warns about",
                              dataclasses.replace(BASE, model="simple_rnn")),
        "lstm": Variant("the same with an LSTM", dataclasses.replace(BASE, model="lstm")),
        "bigru": Variant("a bidirectional GRU", dataclasses.replace(BASE, model="bigru")),
        "bow_bigrams": Variant("baseline: TF-IDF of unigrams + bigrams -> Dense(16) -> sigmoid",
                               dataclasses.replace(BASE, model="bow_bigrams", epochs=10, early_stopping_patience=2)),
        "bigram_bag": Variant("fastText: embeddings (16) of the 500,000 most frequent unigrams and bigrams, "
                              "averaged -> sigmoid; Adagrad",
                              dataclasses.replace(BASE, model="bigram_bag", vocabulary_size=500_000,
                                                  sequence_length=1000, embedding_dim=16, optimizer="adagrad",
                                                  learning_rate=0.2, cosine_decay=True, epochs=5,
                                                  early_stopping_patience=2, batch_size=32, validation_fraction=0.1,
                                                  embedding_dropout=0.0, dropout=0.0)),
        "transformer": Variant("one encoder block: token + position embeddings, 2-head self-attention, "
                               "feed-forward, layer norm, pooling (keras-io's sizes)",
                               dataclasses.replace(BASE, model="transformer", embedding_dim=32, sequence_length=200,
                                                   embedding_dropout=0.0, dropout=0.1, batch_size=32, epochs=3,
                                                   validation_fraction=0.1)),
        "transformer_tail": Variant("the same block reading the last 200 tokens of each review, as keras-io's "
                                    "pad_sequences does, instead of the first 200",
                                    dataclasses.replace(BASE, model="transformer", embedding_dim=32, sequence_length=200,
                                                        read="end", embedding_dropout=0.0, dropout=0.1, batch_size=32,
                                                        epochs=3, validation_fraction=0.1)),
        "bert_gru": Variant("a frozen pretrained BERT (keras-hub preset, local) + GRU head; skipped without weights",
                            dataclasses.replace(BASE, model="bert_gru", sequence_length=128, batch_size=32,
                                                embedding_dropout=0.0)),
    },
    # The model (and which end of a review it reads) is what a variant is: --set model=lstm on `gru`
    # would record an LSTM as gru.
    identity=("model", "read"),
    run=run,
    metric=Metric("test_accuracy", higher_is_better=True, target=0.85),
    progress_unit="epoch",
    throughput_unit="tokens/s",
    predict=predict_from_artifacts,
)
