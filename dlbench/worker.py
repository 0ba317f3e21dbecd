"""One run in its own fresh process: ``python -m dlbench.worker '<json spec>'``.

The parent (dlbench.runner) fixes the device through the environment before this process imports
TensorFlow (``CUDA_VISIBLE_DEVICES=""`` for CPU), so CPU and GPU rows never share a process.
Exit status: 0 ok, 1 failed, 130 interrupted; the row is written in every case.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from dlbench import config as config_module
from dlbench import environment, registry, runner, tracking
from dlbench.data import DataOptions


class DeviceError(RuntimeError):
    pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def check_device(device: str) -> str:
    """Confirm what TensorFlow sees matches the requested device; return the device's name."""
    if device == "cpu":
        return environment.cpu_name()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise DeviceError("a GPU run was requested but TensorFlow sees no GPU in this process")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")


def main(spec: runner.RunSpec) -> int:
    # A polite kill (SIGTERM from a scheduler, timeout) is handled like Ctrl-C: the row says so.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    module = registry.get(spec.experiment)
    config = config_module.apply_overrides(module.Config(), spec.overrides)
    # The experiment records what it actually used when that differs (the NumPy MLP has no XLA).
    row = spec.new_row(config=config_module.to_json(config),
                       jit_compile=str(getattr(config, "jit_compile", "n/a")).lower())
    energy = tracking.EnergyTracker(spec.country, spec.device, enabled=spec.energy)
    data_options = DataOptions(**spec.data_options)
    # TensorFlow's start-up (a few seconds) happens before the run's clocks start, for every variant
    # alike; experiments import Keras inside their functions, where it is then already loaded. A
    # failed or interrupted import is raised inside the run below, so that the row says why.
    try:
        import keras
    except BaseException as error:
        keras, import_error = None, error

    try:
        with tracking.track(row, Path(spec.results_dir), data_options, energy) as run:
            if keras is None:
                raise import_error
            row.device_name = check_device(spec.device)
            # Seeds Python, NumPy and TensorFlow at once; NumPy code also gets run.seed explicitly.
            keras.utils.set_random_seed(spec.seed)
            module.run(config, spec.variant, run)
    except KeyboardInterrupt:
        return 130
    except Exception:
        return 1
    print(f"[dlbench] {row.experiment}/{row.variant}/{row.device}: test_accuracy={row.test_accuracy} "
          f"total={row.time_total_s:.1f}s energy={row.energy_kwh} kWh co2={row.co2_kg} kg", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(runner.RunSpec(**json.loads(sys.argv[1]))))
