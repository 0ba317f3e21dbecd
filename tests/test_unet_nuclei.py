"""unet_nuclei: the weight map, Dice, instance matching, the three-class target and loss, the seeded
watershed (and the scipy quirks it works around), the split, crops and padding, the S-BSST265 folder
layout, a smoke run of every variant on the shipped sample of real images, and `dlbench predict`."""

import json
import types

import numpy as np
import pytest

from dlbench import data, results
from dlbench.cli import main
from experiments import unet_nuclei

PINNED_SPLITS = ["train", "validation", "train", "train", "train", "test", "train", "test"]
TINY = dict(epochs=2, crops_per_epoch=16, batch_size=8, crop_size=64, depth=2, base_filters=4, overlay_images=2)
PIXEL_VARIANTS = [name for name, variant in unet_nuclei.EXPERIMENT.variants.items()
                  if variant.config.loss != "three_class"]


def two_nuclei(gap: int = 4) -> np.ndarray:
    """Two 10 x 10 nuclei side by side, ``gap`` background columns apart, in a 40 x 60 image."""
    labels = np.zeros((40, 60), np.int32)
    labels[15:25, 10:20] = 1
    labels[15:25, 20 + gap:30 + gap] = 2
    return labels


def test_weight_map_is_high_in_the_gap_between_two_nuclei_and_w_c_far_away():
    labels = two_nuclei(gap=4)
    target = unet_nuclei.training_target(labels, separation_border=True)
    weights = unet_nuclei.weight_map(labels, target, w0=10.0, sigma=5.0, weights=(0.7, 3.0))
    # Column 21 of the gap (columns 20-23) is 2 pixels from nucleus 1 and 3 from nucleus 2: d1 + d2 = 5.
    assert weights[20, 21] == pytest.approx(0.7 + 10 * np.exp(-(2.0 + 3.0) ** 2 / 50), rel=1e-5)
    assert weights[20, 21] > 6.5
    assert weights[0, 59] == pytest.approx(0.7, abs=1e-4)  # Far from both: background's w_c only.
    assert weights[20, 12] > 3.0 and weights[20, 12] < weights[20, 19]  # Inside: foreground's w_c, more near the gap.
    # One nucleus alone has no second-nearest nucleus: no boundary term anywhere.
    alone = np.where(labels == 1, 1, 0)
    alone_weights = unet_nuclei.weight_map(alone, alone > 0, w0=10.0, sigma=5.0, weights=(0.7, 3.0))
    np.testing.assert_allclose(alone_weights, np.where(alone > 0, 3.0, 0.7), atol=1e-4)


def test_touching_nuclei_get_a_separation_border_in_the_target():
    labels = two_nuclei(gap=0)
    target = unet_nuclei.training_target(labels, separation_border=True)
    assert target[20, 19] == 0 and target[20, 20] == 0  # The two touching columns are cut...
    assert target[20, 18] == 1 and target[20, 21] == 1  # ...and nothing else.
    assert target.sum() == (labels > 0).sum() - 2 * 10
    assert unet_nuclei.training_target(labels, separation_border=False).sum() == (labels > 0).sum()
    np.testing.assert_array_equal(unet_nuclei.training_target(two_nuclei(gap=3), True), two_nuclei(gap=3) > 0)


def test_class_weights_give_each_class_half_of_the_weight():
    target = np.zeros((10, 10), np.float32)
    target[:2] = 1  # 20 % foreground.
    background, foreground = unet_nuclei.class_weights([target])
    assert (background, foreground) == pytest.approx((0.625, 2.5))
    assert background * 80 == pytest.approx(foreground * 20)


def test_the_three_class_target_parts_two_touching_nuclei_by_a_boundary():
    labels = two_nuclei(gap=0)  # Columns 10-19 and 20-29 of rows 15-24.
    target = unet_nuclei.three_class_target(labels)
    assert set(np.unique(target[labels == 0])) == {0}  # Background everywhere else.
    assert target[20, 19] == 2 and target[20, 20] == 2  # The two touching columns: a 2-pixel boundary...
    assert target[20, 18] == 1 and target[20, 21] == 1  # ...between the two interiors.
    assert target[15, 12] == 2 and target[24, 25] == 2 and target[20, 10] == 2 and target[20, 29] == 2  # Outlines.
    assert (target == 1).sum() == 2 * 8 * 8
    from scipy import ndimage

    assert ndimage.label(target == 1)[1] == 2  # The interiors do not touch: one seed each.


def test_class_weights_of_three_classes_and_their_gentler_balance():
    target = np.zeros((10, 10), np.float32)
    target[:3], target[3] = 1, 2  # 60 % background, 30 % interior, 10 % boundary.
    full = unet_nuclei.class_weights([target], 3, balance=1.0)
    assert full == pytest.approx((1 / 3 / 0.6, 1 / 3 / 0.3, 1 / 3 / 0.1))  # Each class a third of the weight.
    gentle = np.array(unet_nuclei.class_weights([target], 3, balance=0.5))
    assert gentle @ [0.6, 0.3, 0.1] == pytest.approx(1.0)  # Mean weight 1 over the pixels.
    assert gentle[2] / gentle[0] == pytest.approx(np.sqrt(6))
    weights = unet_nuclei.weight_map(two_nuclei(), unet_nuclei.three_class_target(two_nuclei()), 0.0, 5.0, full)
    assert weights[0, 0] == pytest.approx(full[0]) and weights[20, 15] == pytest.approx(full[1])
    assert weights[15, 15] == pytest.approx(full[2])


def test_the_weighted_categorical_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6, 5, 3))
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)).astype(np.float32)
    probabilities[0, 0, 0] = (1.0, 0.0, 0.0)  # A zero probability on the true class: clipped, not infinite.
    classes = rng.integers(0, 3, size=(2, 6, 5))
    classes[0, 0, 0] = 2
    weights = rng.uniform(0.5, 10.0, size=(2, 6, 5))
    y_true = np.stack([classes, weights], axis=-1).astype(np.float32)
    chosen = np.take_along_axis(probabilities, classes[..., None], axis=-1)[..., 0]
    expected = np.mean(weights * -np.log(np.clip(chosen, 1e-7, 1 - 1e-7)))
    loss = float(unet_nuclei.make_loss("three_class")(y_true, probabilities))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_the_dice_metric_of_three_classes_is_the_foreground_dice():
    classes = unet_nuclei.three_class_target(two_nuclei())  # 200 nucleus pixels.
    y_true = np.stack([classes, np.ones_like(classes)], axis=-1)[None]
    predicted = np.zeros(classes.shape + (3,), np.float32)
    predicted[..., 0] = 1.0  # Background everywhere...
    predicted[:, :20] = (0.4, 0.1, 0.5)  # ...but columns 0-19 (nucleus 1, 100 pixels, and 700 background).
    metric = unet_nuclei.dice_metric()
    metric.update_state(y_true, predicted[None])
    assert float(metric.result()) == pytest.approx((2 * 100 + 1) / (200 + 40 * 20 + 1), rel=1e-5)


def disc_pair() -> np.ndarray:
    """Two overlapping discs (radii 10 and 7, the later one drawn on top) and a third apart, in 60 x 80."""
    rows, columns = np.mgrid[:60, :80]
    labels = np.zeros((60, 80), np.int32)
    labels[(rows - 30) ** 2 + (columns - 25) ** 2 <= 100] = 1
    labels[(rows - 30) ** 2 + (columns - 40) ** 2 <= 49] = 2
    labels[(rows - 15) ** 2 + (columns - 62) ** 2 <= 36] = 3
    return labels


def test_scipy_watershed_ift_floods_differences_and_wraps_rows():
    """The behaviour flood_from_seeds works around (SciPy 1.17): if one of these changes, revisit it."""
    from scipy import ndimage

    # A step costs the difference of its two values and markers start at cost 0 whatever their value:
    # the background marker (-1, value 255) takes the 250 pixel at a step of 5, the seed would pay 240.
    row = ndimage.watershed_ift(np.array([[0, 10, 250, 255, 255]], np.uint8), np.array([[1, 0, 0, 0, -1]]))
    np.testing.assert_array_equal(row, [[1, 1, -1, -1, -1]])
    # A flat band costs nothing to walk along: the seed queued last takes all but its rival's neighbour.
    flat = ndimage.watershed_ift(np.full((7, 21), 10, np.uint8), np.pad([[1] + [0] * 15 + [2]], ((3, 3), (2, 2))))
    assert (flat == 2).sum() == 7 * 21 - 1
    # The array is one long row: the seed at (3, 0) reaches (2, 4), across a wall of 255 it never climbs.
    walled = np.zeros((4, 5), np.uint8)
    walled[:, 2] = 255
    markers = np.zeros((4, 5), np.int32)
    markers[0, 4], markers[3, 0] = 1, 2
    assert ndimage.watershed_ift(walled, markers)[2, 4] == 2


def test_the_flood_shares_a_flat_band_by_distance_and_stays_in_its_box():
    seeds = np.zeros((7, 21), np.int32)
    seeds[3, 2], seeds[3, 18] = 1, 2
    flooded = unet_nuclei.flood_from_seeds(np.full((7, 21), 0.3, np.float32), np.ones((7, 21), bool), seeds)
    assert (flooded[:, :10] == 1).all() and (flooded[:, 11:] == 2).all()
    # A wall of p(interior) = 0 between the seeds: each keeps its side, even at the box's edges.
    interior = np.ones((7, 21), np.float32)
    interior[:, 14] = 0.0
    flooded = unet_nuclei.flood_from_seeds(interior, np.ones((7, 21), bool), seeds)
    assert (flooded[:, :14] == 1).all() and (flooded[:, 15:] == 2).all()


def test_the_seeded_watershed_splits_touching_nuclei_that_connected_components_merge():
    labels = disc_pair()
    target = unet_nuclei.three_class_target(labels)
    probability, interior = (target > 0).astype(np.float32), (target == 1).astype(np.float32)
    merged = unet_nuclei.connected_components(probability >= 0.5, min_pixels=10)
    assert len(np.unique(merged[(labels == 1) | (labels == 2)])) == 1  # One blob, at best the larger disc's match.
    assert unet_nuclei.match_instances(labels, merged)["matched"] == 2
    nuclei = unet_nuclei.seeded_watershed(probability, interior, 0.5, 0.5, min_seed_pixels=4, min_object_pixels=10)
    counts = unet_nuclei.match_instances(labels, nuclei)
    assert nuclei.max() == 3 and counts["matched"] == 3 and counts["matched_iou"] / 3 > 0.95
    assert ((nuclei > 0) == (labels > 0)).all()  # The watershed stays inside the mask and fills it.


def test_a_mask_component_without_a_seed_is_one_nucleus_and_specks_are_dropped():
    labels = disc_pair()
    target = unet_nuclei.three_class_target(labels)
    probability, interior = (target > 0).astype(np.float32), (target == 1).astype(np.float32)
    interior[labels == 3] = 0.3  # Disc 3: a nucleus, but no confident interior.
    probability[55:57, 2:5] = 0.9  # A speck of 6 pixels.
    nuclei = unet_nuclei.seeded_watershed(probability, interior, 0.5, 0.5, min_seed_pixels=4, min_object_pixels=10)
    assert nuclei.max() == 3 and unet_nuclei.match_instances(labels, nuclei)["matched"] == 3
    assert len(np.unique(nuclei[labels == 3])) == 1 and nuclei[56, 3] == 0
    segmentation = unet_nuclei.Segmentation("three_class", 4, 10, 0.5, 0.5, 0.5, 4)
    np.testing.assert_array_equal(unet_nuclei.label_nuclei(probability, interior, segmentation), nuclei)


def test_dice_and_iou_of_identical_and_disjoint_masks():
    mask = two_nuclei() > 0
    assert unet_nuclei.dice_score(mask, mask) == 1.0 and unet_nuclei.iou_score(mask, mask) == 1.0
    assert unet_nuclei.dice_score(mask, ~mask) == 0.0 and unet_nuclei.iou_score(mask, ~mask) == 0.0
    half = mask.copy()
    half[:, 20:] = False  # Keeps nucleus 1 only: 100 of 200 pixels.
    assert unet_nuclei.dice_score(mask, half) == pytest.approx(2 * 100 / 300)
    assert unet_nuclei.iou_score(mask, half) == pytest.approx(0.5)
    empty = np.zeros_like(mask)
    assert unet_nuclei.dice_score(empty, empty) == 1.0


def test_the_soft_dice_loss_is_zero_for_a_perfect_prediction_and_near_one_for_the_inverse():
    target = (two_nuclei() > 0).astype(np.float32)[None, ..., None]
    y_true = np.concatenate([target, np.ones_like(target)], axis=-1)
    dice_loss = unet_nuclei.make_loss("dice")
    assert float(dice_loss(y_true, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(dice_loss(y_true, 1.0 - target)) == pytest.approx(1.0, abs=1e-2)
    # The weighted cross-entropy with weight 1 is the plain binary cross-entropy.
    import keras

    prediction = np.full_like(target, 0.3)
    expected = float(keras.losses.BinaryCrossentropy()(target, prediction))
    assert float(unet_nuclei.make_loss("bce")(y_true, prediction)) == pytest.approx(expected, rel=1e-4)


def test_instance_matching_on_hand_made_masks():
    truth = np.zeros((30, 40), np.int32)
    truth[2:8, 2:8] = 1  # 36 pixels, found exactly.
    truth[2:8, 20:26] = 2  # 36 pixels, found as a 6 x 4 part (IoU 24/36 = 0.67: a match).
    truth[15:21, 2:8] = 3  # Found only as a 6 x 2 sliver (IoU 12/36: not a match).
    truth[15:21, 10:16] = 4  # Missed entirely.
    predicted = np.zeros_like(truth)
    predicted[2:8, 2:8] = 7
    predicted[2:8, 20:24] = 3
    predicted[15:21, 2:4] = 1
    predicted[25:29, 30:36] = 2  # A false positive.
    counts = unet_nuclei.match_instances(truth, predicted)
    assert counts["matched"] == 2 and counts["true"] == 4 and counts["predicted"] == 4
    assert counts["matched_iou"] == pytest.approx(1.0 + 24 / 36)
    scores = unet_nuclei.instance_scores([counts])
    assert scores["precision"] == 0.5 and scores["recall"] == 0.5 and scores["f1"] == 0.5
    assert scores["mean_iou"] == pytest.approx((1.0 + 24 / 36) / 2)


def test_touching_predictions_merge_into_one_component_and_fail_to_match():
    truth = two_nuclei(gap=0)
    merged = unet_nuclei.connected_components(truth > 0, min_pixels=0)
    assert merged.max() == 1  # One blob: IoU 0.5 with each nucleus, not above it.
    assert unet_nuclei.match_instances(truth, merged)["matched"] == 0
    separated = unet_nuclei.connected_components(unet_nuclei.training_target(truth, True) > 0, min_pixels=0)
    assert separated.max() == 2 and unet_nuclei.match_instances(truth, separated)["matched"] == 2
    specks = np.zeros((10, 10), bool)
    specks[1, 1] = True  # One pixel: dropped.
    specks[5:8, 5:8] = True
    assert unet_nuclei.connected_components(specks, min_pixels=4).max() == 1


def test_pixel_scores_and_pr_curve_from_histograms():
    truth = two_nuclei() > 0
    probability = np.where(truth, 0.9, 0.1).astype(np.float32)
    probability[0, :10] = 0.6  # Ten false positives above 0.5 but below 0.7.
    positive, negative = unet_nuclei.probability_histograms([probability], [truth])
    at_half = unet_nuclei.confusion_at(positive, negative, 0.5)
    assert at_half["recall"] == 1.0 and at_half["precision"] == pytest.approx(200 / 210)
    assert at_half["dice"] == pytest.approx(unet_nuclei.dice_score(truth, probability >= 0.5))
    assert at_half["accuracy"] == pytest.approx(1 - 10 / truth.size)
    assert unet_nuclei.confusion_at(positive, negative, 0.7)["dice"] == 1.0
    _, precision, recall, average_precision = unet_nuclei.precision_recall_curve(positive, negative)
    assert average_precision == pytest.approx(1.0) and recall[-1] == 1.0 and precision[-1] == truth.mean()


def test_the_split_is_a_stable_function_of_the_image_id():
    ids = [f"{number:064x}" for number in range(2000)]
    splits = [data.nuclei_split_of(image_id) for image_id in ids]
    assert splits == [data.nuclei_split_of(image_id) for image_id in ids]
    shares = {split: splits.count(split) / len(ids) for split in data.NUCLEI_SPLITS}
    assert shares["train"] == pytest.approx(0.70, abs=0.03) and shares["test"] == pytest.approx(0.15, abs=0.03)
    # Pinned: a change of hash would silently move images between train and test on every machine.
    assert splits[:8] == PINNED_SPLITS


def test_crops_and_padding_keep_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    labels = np.zeros((50, 70), np.int32)
    labels[10:30, 5:40] = 1
    image = (labels * 200 + 20).astype(np.float32)  # Bright exactly where the mask is.
    weights = labels.astype(np.float32) * 3 + 1
    for _ in range(20):
        crop_image, crop_mask, crop_weights = unet_nuclei.random_crop([image, labels.astype(np.float32), weights],
                                                                      32, rng)
        assert crop_image.shape == (32, 32)
        np.testing.assert_array_equal(crop_image > 100, crop_mask > 0)
        np.testing.assert_array_equal(crop_weights, crop_mask * 3 + 1)
    small = unet_nuclei.random_crop([image[:20, :20], labels[:20, :20]], 32, rng)  # Reflect-padded up.
    assert small[0].shape == (32, 32) and np.array_equal(small[0] > 100, small[1] > 0)
    padded, size = unet_nuclei.pad_to_multiple(image, 8)
    assert padded.shape == (56, 72) and size == (50, 70)
    np.testing.assert_array_equal(padded[:50, :70], image)


def test_the_loader_reads_an_s_bsst265_folder(tmp_path):
    from PIL import Image

    root = tmp_path / data.NUCLEI_SBSST265_DIR
    (root / "rawimages").mkdir(parents=True)
    (root / "groundtruth").mkdir()
    names = [f"Neuroblastoma_{number}" for number in range(12)]
    for number, name in enumerate(names):
        labels = np.zeros((24, 32), np.uint16)
        labels[4:10, 4:10], labels[12:20, 15:25] = 1, 300 + number  # Label ids need not be consecutive.
        image = np.where(labels > 0, 180 + number, 10).astype(np.uint8)
        Image.fromarray(image).save(root / "rawimages" / f"{name}.tif")
        Image.fromarray(labels).save(root / "groundtruth" / f"{name}.tif")
    dataset = data.load("nuclei", data.DataOptions(data_dir=str(tmp_path), allow_download=False))
    assert dataset.source == data.SOURCE_FULL and "S-BSST265" in dataset.origin
    all_ids = dataset.ids_train + dataset.ids_validation + dataset.ids_test
    assert sorted(all_ids) == sorted(names)
    assert all(data.nuclei_split_of(image_id) == "test" for image_id in dataset.ids_test)
    image, labels = dataset.x_test[0], dataset.y_test[0]
    assert image.dtype == np.uint8 and labels.dtype == np.int32 and image.shape == labels.shape == (24, 32)
    assert set(np.unique(labels)) == {0, 1, 300 + names.index(dataset.ids_test[0])}
    np.testing.assert_array_equal(image > 100, labels > 0)
    (root / "groundtruth" / f"{names[0]}.tif").unlink()
    with pytest.raises(data.DataError, match="has no label mask"):
        data.load("nuclei", data.DataOptions(data_dir=str(tmp_path), allow_download=False))


def test_the_loader_keeps_only_the_fluorescence_images_of_the_dsb_npz(tmp_path):
    ids = [f"{number:064x}" for number in range(12)]
    arrays = {"ids": np.array(ids), "grayscale": np.array([number != 3 for number in range(12)]),
              "mean_intensity": np.array([150.0 if number == 4 else 20.0 for number in range(12)], np.float32)}
    for number in range(12):  # Image 3 is a colour image, image 4 a bright-background one.
        arrays[f"image_{number:03d}"] = np.zeros((8, 8, 3) if number == 3 else (8, 8), np.uint8)
        arrays[f"label_{number:03d}"] = np.ones((8, 8), np.uint16)
    np.savez(tmp_path / data.NUCLEI_FILE, **arrays)
    dataset = data.load("nuclei", data.DataOptions(data_dir=str(tmp_path), allow_download=False))
    kept = dataset.ids_train + dataset.ids_validation + dataset.ids_test
    assert sorted(kept) == sorted(ids[:3] + ids[5:])
    assert "fluorescence subset only" in dataset.origin and "10 of 12 images" in dataset.origin
    assert dataset.ids_test == (ids[5], ids[7]) + tuple(i for i in ids[8:] if data.nuclei_split_of(i) == "test")


def test_the_shipped_sample_is_real_cropped_data_in_its_full_data_split(capsys):
    dataset = data.load("nuclei", data.DataOptions(allow_download=False))
    assert dataset.source == data.SOURCE_SAMPLE and "WARNING: full nuclei data not found" in capsys.readouterr().err
    assert (len(dataset.x_train), len(dataset.x_validation), len(dataset.x_test)) == (10, 3, 3)
    for split in data.NUCLEI_SPLITS:
        images, labels, ids = dataset.split(split)
        assert all(data.nuclei_split_of(image_id) == split for image_id in ids)
        assert all(image.shape == label.shape == (256, 256) for image, label in zip(images, labels))
    assert data.sample_path("nuclei_sample.npz").stat().st_size < 1_500_000


def test_the_default_u_net_has_its_documented_size_and_keeps_the_input_size():
    model = unet_nuclei.build_unet(unet_nuclei.Config())
    assert model.count_params() == 483_857
    assert model.predict_on_batch(np.zeros((1, 24, 40, 1), np.float32)).shape == (1, 24, 40, 1)


def test_config_rejects_a_crop_that_is_not_a_multiple_of_the_stride():
    with pytest.raises(ValueError, match="multiple of 2 \\*\\* depth = 8"):
        unet_nuclei.Config(crop_size=100).validate()
    with pytest.raises(ValueError, match="loss must be one of"):
        unet_nuclei.Config(loss="focal").validate()


def check_row(row, metrics, results_dir) -> None:
    """What every variant's row holds after a tiny run on the shipped sample."""
    assert row.status == results.STATUS_OK and row.dataset_source == "sample" and row.n_test == 3
    assert "fluorescence" in row.dataset_origin
    assert row.units_run == 2 and row.throughput > 0 and row.throughput_unit == "images/s"
    assert row.metric_value == metrics["dice"] and 0.0 <= metrics["dice"] <= 1.0
    for name in ("dice_mean_per_image", "iou", "precision", "recall", "pixel_accuracy", "average_precision",
                 "instance_precision", "instance_recall", "instance_f1", "instance_mean_iou", "threshold",
                 "instance_f1_validation"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["nuclei_true"] > 0
    artifacts = results_dir / row.artifacts_dir
    for name in (unet_nuclei.PR_CURVE_FILE, unet_nuclei.OVERLAYS_FILE, unet_nuclei.MODEL_FILE,
                 unet_nuclei.PREDICT_FILE):
        assert (artifacts / name).exists(), name
    history = (results_dir / row.history_file).read_text().splitlines()
    assert "val_dice" in history[0].split(",") and len(history) == 3


def sample_image_file(folder) -> tuple:
    """A test image of the shipped sample written as an 8-bit PNG (what a user would pass to predict)."""
    from PIL import Image

    image = data.load("nuclei", data.DataOptions(allow_download=False)).x_test[0]
    path = folder / "sample nucleus.png"
    Image.fromarray(image).save(path)
    return path, image.shape


@pytest.mark.parametrize("variant", PIXEL_VARIANTS)
def test_every_pixel_variant_runs_on_the_shipped_sample_and_predicts(run_in_process, variant, tmp_path, capsys):
    row, metrics = run_in_process("unet_nuclei", variant, **TINY)
    check_row(row, metrics, tmp_path)
    assert 0.0 <= metrics["instance_threshold"] <= 1.0 and "instance_seed_threshold" not in metrics
    settings = json.loads((tmp_path / row.artifacts_dir / unet_nuclei.PREDICT_FILE).read_text())
    assert settings["loss"] == variant and settings["threshold"] == metrics["instance_threshold"]
    # Its saved model labels a user's image with connected components at that threshold.
    image_file, shape = sample_image_file(tmp_path)
    capsys.readouterr()
    assert main(["predict", "unet_nuclei", str(image_file), "--variant", variant, "--out", str(tmp_path / "out"),
                 "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("sample nucleus_overlay.png")
    from PIL import Image

    assert np.asarray(Image.open(tmp_path / "out" / "sample nucleus_labels.png")).shape == shape


@pytest.fixture(scope="module")
def instances_run(tmp_path_factory, offline_module):
    """One `dlbench run unet_nuclei --variants instances` at tiny settings, shared by the tests below."""
    results_dir = tmp_path_factory.mktemp("nuclei_results")
    status = main(["run", "unet_nuclei", "--variants", "instances", "--devices", "cpu", "--no-energy",
                   "--set", " ".join(f"{key}={value}" for key, value in TINY.items()),
                   "--results-dir", str(results_dir)])
    return status, results_dir


def test_the_instances_variant_writes_a_complete_row_with_the_watershed_thresholds(instances_run):
    status, results_dir = instances_run
    assert status == 0
    [record] = results.read_records(results_dir, "unet_nuclei")
    row = types.SimpleNamespace(**record)
    metrics = json.loads(record["extra_metrics"])
    assert record["variant"] == "instances"
    check_row(row, metrics, results_dir)
    assert metrics["instance_seed_threshold"] in unet_nuclei.SEED_THRESHOLDS
    assert metrics["instance_mask_threshold"] in unet_nuclei.MASK_THRESHOLDS
    assert metrics["instance_min_seed_pixels"] in unet_nuclei.SEED_SIZES
    assert 0.0 <= metrics["instance_f1_components"] <= 1.0 and "instance_threshold" not in metrics
    assert 0.0 <= metrics["instance_f1_components_validation"] <= 1.0
    assert {"class_weight_background", "class_weight_interior", "class_weight_boundary"} <= set(metrics)
    settings = json.loads((results_dir / row.artifacts_dir / unet_nuclei.PREDICT_FILE).read_text())
    assert settings["loss"] == "three_class" and settings["stride"] == 4
    assert (settings["seed_threshold"], settings["mask_threshold"], settings["min_seed_pixels"]) == (
        metrics["instance_seed_threshold"], metrics["instance_mask_threshold"], metrics["instance_min_seed_pixels"])
    model = unet_nuclei.load_model(results_dir / row.artifacts_dir / unet_nuclei.MODEL_FILE)
    assert model.output_shape == (None, None, None, 3)


def test_predict_writes_a_16_bit_label_image_and_an_overlay_per_image(instances_run, tmp_path, capsys):
    from PIL import Image

    _, results_dir = instances_run
    image_file, shape = sample_image_file(tmp_path)
    out = tmp_path / "new" / "predictions"  # Created.
    assert main(["predict", "unet_nuclei", str(image_file), "--out", str(out), "--results-dir", str(results_dir)]) == 0
    captured = capsys.readouterr()
    assert "unet_nuclei/instances run" in captured.err  # The default variant of `predict unet_nuclei`.
    [line] = captured.out.strip().splitlines()
    labels_file, overlay_file = out / "sample nucleus_labels.png", out / "sample nucleus_overlay.png"
    assert line.endswith(f"nuclei -> {labels_file}, {overlay_file}")
    labels = np.asarray(Image.open(labels_file))
    assert labels.dtype == np.uint16 and labels.shape == shape
    assert int(line.split()[0]) == labels.max() == len(np.unique(labels[labels > 0]))  # Numbered 1..n.
    overlay = np.asarray(Image.open(overlay_file))
    assert overlay.shape == shape + (3,) and overlay.dtype == np.uint8


def test_predict_of_a_missing_or_unreadable_image_or_an_unwritable_folder_is_one_line_and_exit_2(
        instances_run, tmp_path, capsys, monkeypatch):
    _, results_dir = instances_run
    monkeypatch.setattr(unet_nuclei, "load_model", lambda path: pytest.fail("the model was loaded"))
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a PNG")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    image_file, _ = sample_image_file(tmp_path)
    capsys.readouterr()  # The sample loader's warning.
    for inputs, expected in (([str(tmp_path / "missing.png")], "no such file"),
                             ([str(not_an_image)], "cannot read"),
                             ([str(image_file), "--out", str(a_file / "predictions")], "cannot write predictions")):
        assert main(["predict", "unet_nuclei", *inputs, "--results-dir", str(results_dir)]) == 2
        captured = capsys.readouterr()
        assert len(captured.err.strip().splitlines()) == 1 and expected in captured.err, captured.err
        assert captured.out == ""


def test_predict_with_a_damaged_model_says_damaged_and_how_to_re_run(tmp_path, capsys):
    artifacts = tmp_path / "artifacts" / "unet_nuclei" / "r1"
    artifacts.mkdir(parents=True)
    (artifacts / unet_nuclei.MODEL_FILE).write_bytes(b"PK\x03\x04 not a whole zip")
    (artifacts / unet_nuclei.PREDICT_FILE).write_text(json.dumps(
        {"loss": "three_class", "stride": 8, "min_object_pixels": 10, "threshold": 0.5}))
    results.write_record(tmp_path, results.ResultRow(
        run_id="r1", experiment="unet_nuclei", variant="instances", device="cpu", seed=0, status="ok",
        artifacts_dir=str(artifacts.relative_to(tmp_path))))
    image_file, _ = sample_image_file(tmp_path)
    capsys.readouterr()
    assert main(["predict", "unet_nuclei", str(image_file), "--out", str(tmp_path / "out"),
                 "--results-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "is damaged" in error
    assert "re-run: dlbench run unet_nuclei --variants instances" in error
