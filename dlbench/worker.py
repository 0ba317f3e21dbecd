"""One run in its own fresh process: ``python -m dlbench.worker '<json spec>'``.

The parent (dlbench.runner) fixes the device through the environment before this process imports
TensorFlow (``CUDA_VISIBLE_DEVICES=""`` for CPU), so CPU and GPU rows never share a process. A
variant that never touches TensorFlow (the NumPy MLP) does not import it at all: its run starts in
well under a second instead of about eight. TensorFlow's C++ start-up lines are kept in the run's
log file beside its record instead of the console.
Exit status: 0 ok, 1 failed, 130 interrupted; the record is written in every case it can be.
"""

from __future__ import annotations

import signal

# First, before any heavy import: a SIGTERM that arrives while a loaded machine is still starting this
# process must not kill it with no record. It is remembered here and turned into an 'interrupted'
# record as soon as the run's record exists (main below).
_TERMINATED: list[int] = []
for _signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
    if _signum is not None:
        signal.signal(_signum, lambda signum, frame: _TERMINATED.append(signum))  # main() acts on it.

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

from dlbench import config as config_module  # noqa: E402
from dlbench import environment, registry, results, runner, tracking  # noqa: E402
from dlbench.data import DataOptions  # noqa: E402


class DeviceError(RuntimeError):
    pass


def _remember_termination(signum, frame):
    _TERMINATED.append(signum)


def _raise_interrupt(signum, frame):
    # One termination is enough: the kernel repeats the parent-death signal once per exiting thread of
    # the parent, and a second KeyboardInterrupt would cut the writing of the 'interrupted' record short.
    for repeated in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if repeated is not None:
            signal.signal(repeated, _remember_termination)
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def _parent_pid() -> int | None:
    try:
        return int(os.environ["DLBENCH_PARENT_PID"])
    except (KeyError, ValueError):
        return None


def orphaned() -> bool:
    """True when the dlbench process that started this worker is gone (this one was re-parented)."""
    parent = _parent_pid()
    return parent is not None and os.getppid() != parent


def stop_with_parent() -> None:
    """A worker whose parent dies (even by SIGKILL) gets SIGTERM, handled like Ctrl-C: it records
    'interrupted' instead of training on unaccounted for. Linux: PR_SET_PDEATHSIG; elsewhere a thread
    polls the parent's pid every second."""
    if _parent_pid() is None:
        return  # Started by hand or by a test: no parent to follow.
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0) == 0  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if not armed:
        import threading
        import time

        def watch():
            while not orphaned():
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="dlbench-parent-watch", daemon=True).start()
    if orphaned():  # The parent died before the signal was armed.
        _TERMINATED.append(signal.SIGTERM)


@contextmanager
def stderr_into(log_path: Path):
    """Send this process's file descriptor 2 (where TensorFlow's C++ logging writes, before any of
    its log-level settings apply) to the run's log file for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            os.dup2(log.fileno(), 2)
    except OSError:  # No log file: the lines go to the console as before.
        os.close(saved)
        yield
        return
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def check_device(device: str) -> str:
    """Confirm what TensorFlow sees matches the requested device; return the device's name. Asking
    TensorFlow for its devices also initialises them now, while its start-up lines go to the log."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        return environment.cpu_name()
    if not gpus:
        raise DeviceError("a GPU run was requested but TensorFlow sees no GPU in this process")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")


def set_seeds(seed: int, uses_tensorflow: bool) -> None:
    """Python, NumPy and (when loaded) TensorFlow; NumPy code also gets record.seed explicitly."""
    if uses_tensorflow:
        import keras

        keras.utils.set_random_seed(seed)
    else:
        import numpy as np

        random.seed(seed)
        np.random.seed(seed)


def main(spec: runner.RunSpec) -> int:
    # Ctrl-C while training stops at the end of the current unit (tracking.StopRequest says why).
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, tracking.STOP.on_interrupt)
    experiment = registry.get(spec.experiment)
    variant = experiment.variants[spec.variant]
    config = config_module.apply_overrides(variant.config, spec.overrides)
    results_dir = Path(spec.results_dir)
    log_path = results.runs_dir(results_dir, spec.experiment) / f"{spec.run_id}.log"
    row = spec.new_row(config=config_module.to_json(config),
                       jit_compile=str(getattr(config, "jit_compile", "n/a")).lower()
                       if variant.uses_tensorflow else "n/a",
                       log_file=str(log_path.relative_to(results_dir)))
    # TensorFlow's start-up (a few seconds) happens before the run's clocks start; experiments
    # import Keras inside their functions, where it is then already loaded. A failed or interrupted
    # import is raised inside the run below, so that the record says why.
    import_error = None
    if variant.uses_tensorflow:
        with stderr_into(log_path):
            try:
                import keras  # noqa: F401
            except BaseException as error:
                import_error = error
    energy = tracking.EnergyTracker(spec.country, spec.device, enabled=spec.energy,
                                    tracking_mode=spec.energy_tracking_mode)
    try:
        with tracking.track(row, experiment, results_dir, DataOptions(**spec.data_options), energy,
                            verbose=spec.verbose, log_path=log_path) as record:
            # From here a polite kill (SIGTERM from a scheduler, a timeout, Ray) is handled like Ctrl-C,
            # and one that came while the process was starting is acted on now: the record says so.
            signal.signal(signal.SIGTERM, _raise_interrupt)
            if hasattr(signal, "SIGHUP"):
                signal.signal(signal.SIGHUP, _raise_interrupt)
            if _TERMINATED:
                raise KeyboardInterrupt
            if import_error is not None:
                raise import_error
            if variant.uses_tensorflow:
                with stderr_into(log_path):  # TensorFlow's device set-up logs too (cuInit...).
                    row.device_name = check_device(spec.device)
            else:
                row.device_name = environment.cpu_name()
            set_seeds(spec.seed, variant.uses_tensorflow)
            experiment.run(config, spec.variant, record)
    except KeyboardInterrupt:
        # The record is written; a repeated termination signal must not kill the exit either (at the
        # interpreter's end Python hands back the default handlers, not an ignored signal's).
        for repeated in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if repeated is not None:
                signal.signal(repeated, signal.SIG_IGN)
        # Terminated (not Ctrl-C): the parent may be gone, or going - while its other threads exit, this
        # process still sees its pid - so rebuild the CSV here; a living parent rebuilds it again.
        if _TERMINATED or orphaned():
            try:
                results.rebuild_csv(results_dir, spec.experiment)
            except OSError:
                pass
        return 130
    except results.ResultsWriteError as error:
        print(f"dlbench: error: {error}", file=sys.stderr, flush=True)
        return runner.EXIT_NO_RECORD
    except Exception:
        return 1
    if row.status == results.STATUS_SKIPPED:
        return 0  # Not a failure: the record says what to provide.
    print(f"[dlbench] {row.experiment}/{row.variant}/{row.device}: {row.metric}={_number(row.metric_value)} "
          f"total={row.time_total_s:.1f}s energy={_number(row.energy_kwh)} kWh co2={_number(row.co2_kg)} kg",
          flush=True)
    return 0


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def read_spec(argument: str) -> runner.RunSpec:
    """The spec as JSON: on standard input when the argument is '-' (how dlbench starts workers, with
    the run id as a second argument that only names the process), else the argument itself."""
    return runner.RunSpec(**json.loads(sys.stdin.read() if argument == "-" else argument))


if __name__ == "__main__":
    stop_with_parent()
    sys.exit(main(read_spec(sys.argv[1])))
