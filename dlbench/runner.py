"""Plan runs (experiment x variant x device x repeat) and execute each in its own process.

The parent never imports TensorFlow for a run: it validates everything it can (experiment, variants,
overrides, devices) before starting anything, then launches ``dlbench.worker`` once per run with the
device fixed in the child's environment. If a child dies without writing its row (killed, out of
memory), the parent writes one with status ``failed``; on Ctrl-C it lets the running child record
``interrupted`` and starts nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

from dlbench import config as config_module
from dlbench import data, environment, machine, registry, results
from dlbench.data import DataOptions


SEED_MAX = 2**32 - 1  # NumPy's and Keras' seeds are unsigned 32-bit integers.
MAX_REPEATS = 1_000
PLAN_LISTED = 20  # A longer plan is summed up, not listed run by run.
# The worker's exit status when it could not write its record (it has said why, in one line).
EXIT_NO_RECORD = 3
# How long the output relays may take to pass on a finished worker's last lines: a grandchild process that
# kept the worker's output open must not hold the parent up.
RELAY_DRAIN_S = 5.0


class RunnerError(ValueError):
    """Bad request (unknown variant, GPU absent...): reported as one line, exit status 2."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    experiment: str
    variant: str
    device: str
    repeat: int
    seed: int
    overrides: dict
    data_options: dict
    results_dir: str
    country: str
    energy: bool
    run_id: str
    group_id: str = ""
    study: str = ""
    study_point: str = ""
    verbose: bool = False
    # CodeCarbon's scope: "machine" when the run has the machine to itself, "process" when runs share
    # it (dlbench.cluster with fewer CPUs per run than a node has), so no run counts the others' energy.
    energy_tracking_mode: str = "machine"
    # Started with --concurrent (no machine-wide lock), or a Ray task sharing its node with others.
    concurrent: bool = False
    lock_wait_s: float | None = None

    def new_row(self, **fields) -> results.ResultRow:
        """A result row with this run's identity filled in (the worker's row, or the parent's stand-in)."""
        experiment = registry.get(self.experiment)
        return results.ResultRow(
            run_id=self.run_id, timestamp_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            experiment=self.experiment, variant=self.variant, device=self.device, repeat=self.repeat,
            seed=self.seed, group_id=self.group_id, study=self.study, study_point=self.study_point,
            metric=experiment.metric.name, metric_direction=experiment.metric.direction,
            progress_unit=experiment.progress_unit, git_commit=environment.git_commit(), host=environment.host(),
            machine=machine.label(), machine_fingerprint=json.dumps(machine.fingerprint(), sort_keys=True),
            concurrent=self.concurrent, lock_wait_s=self.lock_wait_s, **environment.versions(), **fields)

    def label(self) -> str:
        return (f"{self.experiment}/{self.variant}/{self.device}" + (f"#{self.repeat}" if self.repeat else "")
                + (f" [{self.study_point}]" if self.study_point else ""))


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def parse_devices(text: str | None) -> list[str] | None:
    if not text:
        return None
    devices = [d.strip().lower() for d in text.split(",") if d.strip()]
    for device in devices:
        if device not in ("cpu", "gpu"):
            raise RunnerError(f"unknown device '{device}'; valid: cpu, gpu")
    return devices


def plan(experiment: str, variants: list[str] | None, devices: list[str] | None, overrides: dict,
         **options) -> list[RunSpec]:
    """Specs for the chosen variants (default: all) with the same overrides; see plan_points."""
    variants = variants or list(registry.get(experiment).variants)
    return plan_points(experiment, [(variant, overrides, "") for variant in variants], devices, **options)


def plan_points(experiment_name: str, points: list[tuple[str, dict, str]], devices: list[str] | None,
                repeats: int = 1, seed: int = 0, data_options: DataOptions | None = None,
                results_dir: str = "results", country: str = "FRA", energy: bool = True,
                group_id: str | None = None, study: str = "", verbose: bool = False) -> list[RunSpec]:
    """Specs for every (variant, overrides, study point label) on every device, repeated; everything is
    checked (variants, overrides, seeds, country, devices, GPU) before anything runs, each message once."""
    experiment = registry.get(experiment_name)
    for variant, overrides, _ in points:
        if variant not in experiment.variants:
            raise RunnerError(f"unknown variant '{variant}' for {experiment_name}; "
                              f"valid: {', '.join(experiment.variants)}")
        for key in overrides:
            if key in experiment.identity:
                value = getattr(experiment.variants[variant].config, key)
                others = [name for name, other in experiment.variants.items()
                          if str(getattr(other.config, key)).lower() == str(overrides[key]).lower()]
                raise RunnerError(f"--set {key}=... would change what variant '{variant}' is ({key}={value}) while "
                                  f"its rows still say '{variant}'; choose the variant instead: --variants "
                                  f"{','.join(others) if others else '|'.join(experiment.variants)}")
        # Check overrides here, once, so a typo fails before any run starts.
        config_module.apply_overrides(experiment.variants[variant].config, overrides)
    if not 1 <= repeats <= MAX_REPEATS:
        raise RunnerError(f"--repeats must be between 1 and {MAX_REPEATS:,}, got {repeats:,}")
    if not 0 <= seed <= SEED_MAX - (repeats - 1):
        raise RunnerError(f"--seed must be in 0..{SEED_MAX} (with --repeats {repeats}: "
                          f"0..{SEED_MAX - (repeats - 1)}), got {seed}")
    if experiment.max_seed and seed + repeats - 1 > experiment.max_seed[0]:
        largest, why = experiment.max_seed
        raise RunnerError(f"{experiment_name} takes seeds 0..{largest} ({why}); --seed {seed} with --repeats "
                          f"{repeats} would use seed {seed + repeats - 1}")
    try:  # Also without energy tracking: the country is recorded in every row.
        country = environment.check_country(country)
    except ValueError as error:
        raise RunnerError(str(error)) from None

    if devices is None:
        devices = ["cpu"] + (["gpu"] if environment.gpu_available()[0] else [])
    elif "gpu" in devices:
        available, reason = environment.gpu_available()
        if not available:
            raise RunnerError(f"a GPU run was requested but no GPU is usable: {reason}. "
                              f"Run with DEVICES=cpu (--devices cpu), or install dlbench[gpu] on a GPU machine.")

    specs, skipped = [], {}
    group_id = group_id or new_id()
    data_options = dataclasses.asdict(data_options or DataOptions.from_environment())
    for repeat in range(repeats):
        for variant, overrides, study_point in points:
            for device in devices:
                if device not in experiment.variants[variant].devices:
                    skipped[variant, device] = True
                    continue
                specs.append(RunSpec(
                    experiment=experiment_name, variant=variant, device=device, repeat=repeat,
                    seed=seed + repeat, overrides=dict(overrides), data_options=data_options,
                    results_dir=str(results_dir), country=country, energy=energy, run_id=new_id(),
                    group_id=group_id, study=study, study_point=study_point, verbose=verbose))
    for variant, device in skipped:
        print(f"[dlbench] skipping {experiment_name}/{variant} on {device}: this variant runs on "
              f"{', '.join(experiment.variants[variant].devices)} only", file=sys.stderr)
    if not specs:
        raise RunnerError("nothing to run: the chosen variants do not run on the chosen devices")
    # The data source and the slow-run notes are said once the results folder is known to be usable too
    # (prepare_data, at the start of run_all): a bad --results-dir stays a one-line error.
    return specs


def prepare_data(specs: list[RunSpec]) -> list[RunSpec]:
    """Once per command, after every check and before the first run: decide where the runs' data comes
    from (``data.prepare``: found, downloaded now, or the shipped sample, announced here once) and give
    every run that outcome, so that no run downloads or warns again; then say which runs take long on
    this CPU. Topics that generate their data have nothing to find."""
    experiment = registry.get(specs[0].experiment)
    options, source = DataOptions(**specs[0].data_options), None  # The plan gives every run the same.
    if experiment.dataset in data.FULL_DATA:
        options, source = data.prepare(experiment.dataset, options)
    announce_slow_runs(specs[0].experiment, [spec.variant for spec in specs if spec.device == "cpu"],
                       on_sample=source == data.SOURCE_SAMPLE)
    planned = specs[0].data_options  # A spec given other options by hand (a test) keeps its own.
    return [dataclasses.replace(spec, data_options=dataclasses.asdict(options)) if spec.data_options == planned
            else spec for spec in specs]


def announce_slow_runs(experiment_name: str, cpu_variants: list[str], on_sample: bool) -> None:
    """Say up front when a run will take long on this CPU, before the user walks away: once per note, naming
    every variant it applies to. The notes give full-data times: on the shipped sample, which trains in
    minutes, they would only mislead."""
    if on_sample:
        return
    experiment = registry.get(experiment_name)
    variants_by_note: dict[str, list[str]] = {}
    for variant in dict.fromkeys(cpu_variants):
        note = experiment.variants[variant].slow_on_cpu
        if note:
            variants_by_note.setdefault(note, []).append(variant)
    for note, variants in variants_by_note.items():
        print(f"[dlbench] note: {experiment_name}/{','.join(variants)} on CPU: {note}", file=sys.stderr)


def child_environment(device: str) -> dict:
    environment_variables = dict(os.environ)
    # Fix the device before TensorFlow is imported in the child.
    if device == "cpu":
        environment_variables["CUDA_VISIBLE_DEVICES"] = ""
    environment_variables.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment_variables["PYTHONUNBUFFERED"] = "1"
    # The worker stops (and records 'interrupted') if this process dies, even by SIGKILL.
    environment_variables["DLBENCH_PARENT_PID"] = str(os.getpid())
    return environment_variables


def start_worker(spec: RunSpec, environment_variables: dict | None = None, **popen_options) -> subprocess.Popen:
    """``python -m dlbench.worker -`` with the spec on its standard input: a spec of any size (a long
    --set value) fits, where the command line has a limit of its own."""
    # The run id on the command line only names the process (ps, a test looking for it).
    command = [sys.executable, "-m", "dlbench.worker", "-", spec.run_id]
    process = subprocess.Popen(command, env=environment_variables or child_environment(spec.device),
                               stdin=subprocess.PIPE, **popen_options)
    try:
        process.stdin.write(json.dumps(dataclasses.asdict(spec)).encode())
        process.stdin.close()
    except OSError:  # The worker died at once (its exit status says so); the caller records it.
        pass
    return process


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP to this process: handled like Ctrl-C, and passed on to the running worker."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def termination_as_interrupt():
    """While runs are made, SIGTERM and SIGHUP raise Terminated (restored afterwards)."""
    def handler(signum, frame):
        raise Terminated(signum)

    previous = {}
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def relay_lines(stream, target) -> threading.Thread:
    """Copy a worker's output to this process's ``target`` (sys.stdout or sys.stderr) line by line, in a
    thread. A notebook shows what its kernel writes to sys.stdout, never what a child process writes to the
    kernel's file descriptors."""
    def copy():
        with stream:
            for line in iter(stream.readline, b""):
                try:
                    target.write(line.decode("utf-8", errors="replace"))
                    target.flush()
                except (OSError, ValueError):  # Output closed: keep reading, or the worker would block on a full pipe.
                    pass

    thread = threading.Thread(target=copy, name="dlbench-relay", daemon=True)
    thread.start()
    return thread


def execute(spec: RunSpec, relay_output: bool = False) -> int:
    """Run one spec in a child process; make sure its record exists afterwards and rebuild the CSV.
    Returns the exit status. With ``relay_output`` the worker's output passes through this process's
    sys.stdout and sys.stderr (dlbench.run in a notebook) instead of going straight to the terminal; the
    worker then sees no terminal, so its progress is plain lines."""
    print(f"[dlbench] run {spec.run_id}: {spec.label()} seed={spec.seed}", flush=True)
    relays = []
    if relay_output:
        process = start_worker(spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        relays = [relay_lines(process.stdout, sys.stdout), relay_lines(process.stderr, sys.stderr)]
    else:
        process = start_worker(spec)
    interrupted = None
    try:
        status = process.wait()
    except KeyboardInterrupt as stop:
        # Ctrl-C reached the child too (same process group); a SIGTERM/SIGHUP sent to this process alone
        # is passed on. Either way the child stops at the end of its current unit and writes its
        # 'interrupted' record. A second signal stops it at once; it then gets 60 s to write it.
        interrupted = stop
        if isinstance(stop, Terminated):
            process.send_signal(signal.SIGTERM)
        try:
            status = process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                status = process.wait()
    for relay in relays:  # The worker's last lines (its result) before the parent's next one.
        relay.join(timeout=RELAY_DRAIN_S)
    try:
        if not results.has_record(spec.results_dir, spec.experiment, spec.run_id):
            row = spec.new_row(
                config=json.dumps(spec.overrides, sort_keys=True),
                status=results.STATUS_INTERRUPTED if interrupted else results.STATUS_FAILED,
                error=f"worker process ended with status {status} before writing its record "
                      f"(config column holds the overrides only)",
            )
            results.write_record(spec.results_dir, row)
        results.rebuild_csv(spec.results_dir, spec.experiment)
    except results.ResultsWriteError as error:
        if status != EXIT_NO_RECORD:  # Else the worker has just said the same, in one line.
            print(f"dlbench: error: {error}", file=sys.stderr, flush=True)
        status = status or 1
    if interrupted is not None:
        raise interrupted
    return status


def describe_plan(specs: list[RunSpec]) -> str:
    """Every run of a short plan; a long one summed up (10,000 runs would be a line of megabytes)."""
    labels = [spec.label() for spec in specs]
    if len(labels) <= PLAN_LISTED:
        return f"{len(labels)} run(s) planned: {', '.join(labels)}"
    variants = list(dict.fromkeys(spec.variant for spec in specs))
    devices = list(dict.fromkeys(spec.device for spec in specs))
    repeats = max(spec.repeat for spec in specs) + 1
    return (f"{len(labels):,} runs planned: {len(variants)} variant(s) ({', '.join(variants[:5])}"
            f"{', ...' if len(variants) > 5 else ''}) x {', '.join(devices)} x {repeats:,} repeat(s); "
            f"first {labels[0]}, last {labels[-1]}")


def run_all(specs: list[RunSpec], concurrent: bool = False, relay_output: bool = False) -> int:
    """Execute every spec in order; return 0 if all succeeded, 1 if any failed, 130 on Ctrl-C (128 +
    the signal on SIGTERM/SIGHUP). Holds the machine-wide measurement lock throughout (a second dlbench
    run waits) unless ``concurrent``; ends with the comparison table of the runs it made.
    ``relay_output``: see ``execute``."""
    results.check_results_dir(specs[0].results_dir, specs[0].experiment)  # Before anything runs.
    failures, status = 0, None
    print(f"[dlbench] {describe_plan(specs)}", flush=True)
    specs = prepare_data(specs)
    try:
        with termination_as_interrupt(), machine.exclusive(enabled=not concurrent) as lock:
            for spec in specs:
                lock.now_running(f"{spec.run_id} {spec.label()}")
                spec = dataclasses.replace(spec, concurrent=concurrent, lock_wait_s=round(lock.waited_s, 3))
                lock.waited_s = 0.0  # Only the first run of the command waited.
                exit_status = execute(spec, relay_output)
                if exit_status != 0:
                    failures += 1
                    where = ("its record says why" if results.has_record(spec.results_dir, spec.experiment,
                                                                         spec.run_id)
                             else "no record could be written: see the error above")
                    print(f"[dlbench] {spec.label()} failed (exit {exit_status}); {where}", file=sys.stderr)
    except KeyboardInterrupt as stop:
        how = f"terminated ({signal.Signals(stop.signum).name})" if isinstance(stop, Terminated) else "interrupted"
        print(f"[dlbench] {how}: the running run was recorded; no further runs started", file=sys.stderr)
        status = 128 + stop.signum if isinstance(stop, Terminated) else 130
    csv_path = results.results_path(specs[0].results_dir, specs[0].experiment)
    print_table_of(specs)
    if status is None:
        print(f"[dlbench] {len(specs) - failures}/{len(specs)} runs ok; rows in {csv_path}", flush=True)
        status = 1 if failures else 0
    return status


def print_table_of(specs: list[RunSpec]) -> None:
    """The table of the runs just made (never fatal: the records are already safe)."""
    try:
        table = run_table(specs[0].results_dir, specs[0].experiment, [spec.run_id for spec in specs])
    except Exception as error:  # noqa: BLE001 - a display problem must not turn a good run into a failure.
        print(f"[dlbench] (no table: {error})", file=sys.stderr)
        return
    if table:
        print("\n" + table + "\n", flush=True)


def run_table(results_dir, experiment: str, run_ids: list[str]) -> str:
    """A narrow table (under 100 columns) of the given runs, read from their records alone: no pandas
    and no other record is loaded, so printing it costs milliseconds, not the half second pandas takes."""
    records = []
    for run_id in run_ids:
        try:
            records.append(json.loads(results.record_path(results_dir, experiment, run_id).read_text()))
        except (OSError, ValueError):
            continue
    if not records:
        return ""

    def number(value, pattern: str) -> str:
        return pattern.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""

    unit = records[-1].get("progress_unit") or "unit"
    header = ["variant", "device", "status", records[-1].get("metric") or "metric", f"s/{unit}", "total s", "kWh",
              "g CO2", "forecast", "other CPU", "data"]
    rows = [[record.get("variant", ""), record.get("device", ""), record.get("status", ""),
             number(record.get("metric_value"), "{:.4f}"), number(record.get("time_steady_unit_s"), "{:.3f}"),
             number(record.get("time_total_s"), "{:.1f}"), number(record.get("energy_kwh"), "{:.2g}"),
             number(1000 * record["co2_kg"] if isinstance(record.get("co2_kg"), (int, float)) else None, "{:.2g}"),
             number(100 * record["forecast_time_error"] if isinstance(record.get("forecast_time_error"), (int, float))
                    else None, "{:+.0f}%"),
             number(100 * record["cpu_other_share"] if isinstance(record.get("cpu_other_share"), (int, float))
                    else None, "{:.0f}%") + ("!" if record.get("contended") else ""),
             record.get("dataset_source", "")] for record in records]
    widths = [max(len(str(line[column])) for line in [header, *rows]) for column in range(len(header))]
    left = {0, 2, len(header) - 2, len(header) - 1}  # Text columns; numbers are right-aligned.
    table = "\n".join(" ".join(str(cell).ljust(width) if column in left else str(cell).rjust(width)
                                for column, (cell, width) in enumerate(zip(line, widths))).rstrip()
                       for line in [header, *rows])
    if any(record.get("contended") for record in records):  # A mark, not a word: the table stays narrow.
        table += "\n! contended: other processes used over 10 % of the CPU during the run (its times include theirs)"
    return table
