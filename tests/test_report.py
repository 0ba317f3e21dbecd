import pandas as pd

from dlbench import report


def test_config_differences_show_only_what_departs_from_the_usual_value():
    frame = pd.DataFrame({"config": [
        '{"epochs": 12, "learning_rate": 0.01}',
        '{"epochs": 12, "learning_rate": 0.01, "l2": 0.0}',  # A newer row with one more key.
        '{"epochs": 12, "learning_rate": 0.1, "l2": 0.0}',
        '{"epochs": 3, "learning_rate": 0.01, "l2": 0.001}',
    ]})
    assert report.config_differences(frame).tolist() == ["", "", "learning_rate=0.1", "epochs=3 l2=0.001"]
