"""unet_nuclei: the weight map, Dice, instance matching, the split, crops and padding, the S-BSST265 folder
layout, and a smoke run of every variant on the shipped sample of real images."""

import numpy as np
import pytest

from dlbench import data, results
from experiments import unet_nuclei

PINNED_SPLITS = ["train", "validation", "train", "train", "train", "test", "train", "test"]
TINY = dict(epochs=2, crops_per_epoch=16, batch_size=8, crop_size=64, depth=2, base_filters=4, overlay_images=2)


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


@pytest.mark.parametrize("variant", list(unet_nuclei.EXPERIMENT.variants))
def test_every_variant_runs_on_the_shipped_sample(run_in_process, variant, tmp_path):
    row, metrics = run_in_process("unet_nuclei", variant, **TINY)
    assert row.status == results.STATUS_OK and row.dataset_source == "sample" and row.n_test == 3
    assert "fluorescence" in row.dataset_origin
    assert row.units_run == 2 and row.throughput > 0 and row.throughput_unit == "images/s"
    assert row.metric_value == metrics["dice"] and 0.0 <= metrics["dice"] <= 1.0
    for name in ("dice_mean_per_image", "iou", "precision", "recall", "pixel_accuracy", "average_precision",
                 "instance_precision", "instance_recall", "instance_f1", "instance_mean_iou", "threshold"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["nuclei_true"] > 0
    artifacts = tmp_path / row.artifacts_dir
    assert (artifacts / unet_nuclei.PR_CURVE_FILE).exists() and (artifacts / unet_nuclei.OVERLAYS_FILE).exists()
    history = (tmp_path / row.history_file).read_text().splitlines()
    assert "val_dice" in history[0].split(",") and len(history) == 3
