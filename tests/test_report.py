import json

import pandas as pd

from dlbench import report


def test_config_differences_show_only_what_departs_from_the_variants_defaults():
    frame = pd.DataFrame({"variant": "keras", "config": [
        '{"epochs": 12, "learning_rate": 0.01}',
        '{"epochs": 12, "learning_rate": 0.01, "l2": 0.0}',  # A newer row with one more key.
        '{"epochs": 12, "learning_rate": 0.1, "l2": 0.0}',
        '{"epochs": 3, "learning_rate": 0.01, "l2": 0.001}',
    ]})
    defaults = {"keras": {"epochs": "12", "learning_rate": "0.01", "l2": "0.0"}}
    assert report.config_differences(frame, defaults).tolist() == ["", "", "learning_rate=0.1", "epochs=3 l2=0.001"]


def test_each_variants_own_defaults_are_not_differences():
    # cnn_cifar's variants differ in optimizer, learning rate and epochs by default.
    defaults = report.variant_defaults("cnn_cifar")
    assert defaults["fc_adam"]["learning_rate"] != defaults["fc_sgd"]["learning_rate"]
    frame = pd.DataFrame({"variant": ["fc_sgd", "fc_adam", "lenet", "wide"], "config": [
        json.dumps({key: json.loads(value) for key, value in defaults[variant].items()})
        for variant in ("fc_sgd", "fc_adam", "lenet", "wide")]})
    frame.loc[3, "config"] = frame.loc[3, "config"].replace('"epochs": 15', '"epochs": 2')
    assert report.config_differences(frame, defaults).tolist() == ["", "", "", "epochs=2"]
