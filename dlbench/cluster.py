"""Run the planned runs as Ray tasks, on a local Ray instance or a cluster: ``--backend ray``.

Each run is one Ray task that starts the same worker process as the local backend
(``python -m dlbench.worker``, device fixed by runner.child_environment before TensorFlow loads) on
whichever node has the CPUs and GPUs the run asks for. The driver (this process) stores what comes
back as a local run would: the record, then the CSV rebuilt from the records.

- **Results directory.** If a node sees the driver's results directory (a shared filesystem), its
  worker writes there directly. Otherwise the worker writes into a node-local temporary directory
  and the task sends the run's files back (record, history, log, artifacts). The driver finds out
  which by leaving a marker file with a random token in its results directory for the tasks to read.
- **Energy.** With the default of all a node's CPUs per run, a run has its machine to itself and
  CodeCarbon measures the machine. With fewer CPUs per run than a node has, runs share it: the worker
  then uses CodeCarbon's process tracking mode (energy_settings says ``"tracking_mode": "process"``)
  so that the machine's energy is never counted once per run.
- **Failures.** A task whose worker dies without a record, or whose Ray worker or node is lost, gets a
  ``failed`` stand-in record saying so (Ray does not retry it: a half-run retried would be a new run
  under the same id). Ctrl-C cancels the pending tasks and makes the running ones stop their worker
  with SIGTERM, which the worker records as ``interrupted``.

Ray is an optional extra (``pip install 'dlbench[cluster]'``) imported only inside these functions,
so the command line stays fast without it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from dlbench import machine, progress, results, runner

INSTALL_HINT = "pip install 'dlbench[cluster]'"
# After Ctrl-C, how long a worker may take to write its 'interrupted' record (as in runner.execute).
STOP_WAIT_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 10  # A cluster head answers within milliseconds on a network that works.
# Why Ray says a task was lost, in words a record can keep.
LOST_TASK_REASONS = {
    "NodeDiedError": "the node running it died or became unreachable",
    "WorkerCrashedError": "the Ray worker process running it died (killed, out of memory, or its node was lost)",
    "LocalRayletDiedError": "the Ray daemon of its node died",
}


class ClusterError(runner.RunnerError):
    """Ray missing, unreachable, or without the resources asked for: one line, exit status 2."""


# --------------------------------------------------------------------------------------------------
# The driver: connect, check resources, submit every run, store what comes back
# --------------------------------------------------------------------------------------------------

def import_ray():
    """The one place Ray is imported: a clear one-line error when the extra is not installed."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--backend ray needs Ray, which is not installed; install it with: {INSTALL_HINT}") from None
    return ray


def run_all(specs: list[runner.RunSpec], address: str | None = None, cpus_per_run: int | None = None,
            gpus_per_run: float | None = None, node_local_results: bool = False, concurrent: bool = False) -> int:
    """Execute every spec as a Ray task; return 0 if all succeeded, 1 if any failed, 130 on Ctrl-C.

    ``address``: a running cluster's (``ray start --head`` prints it); None starts a Ray instance on
    this machine. ``cpus_per_run`` defaults to all the CPUs of the largest node, ``gpus_per_run`` to 1
    for GPU runs. ``node_local_results``: the workers never write into the driver's results directory,
    even where they could (tests use it to simulate a cluster without a shared filesystem). A Ray
    instance started here measures on this machine: it holds the machine-wide measurement lock, as
    `dlbench run` does, unless ``concurrent``."""
    ray = import_ray()
    results.check_results_dir(specs[0].results_dir, specs[0].experiment)  # Before anything runs.
    if address:
        check_reachable(address)  # Before a data download that would be wasted on an unreachable cluster.
    specs = runner.prepare_data(specs)  # Once per command: the data source, the sample warning, slow notes.
    specs = [dataclasses.replace(_with_absolute_paths(spec), concurrent=concurrent or spec.concurrent)
             for spec in specs]
    with machine.exclusive(enabled=address is None and not concurrent):
        started_here = connect(ray, address)
        try:
            cpus, gpus, largest_node_cpus = check_resources(ray, specs, cpus_per_run, gpus_per_run)
            _print_plan(ray, specs, cpus, gpus, largest_node_cpus)
            with results_marker(specs[0].results_dir, enabled=not node_local_results) as marker:
                failures = _run_tasks(ray, specs, cpus, gpus, marker)
        finally:
            if started_here:
                ray.shutdown()
    runner.print_table_of(specs)
    if failures is None:
        return 130
    csv_path = results.results_path(specs[0].results_dir, specs[0].experiment)
    print(f"[dlbench] {len(specs) - failures}/{len(specs)} runs ok; rows in {csv_path}", flush=True)
    return 1 if failures else 0


def _with_absolute_paths(spec: runner.RunSpec) -> runner.RunSpec:
    """Ray workers do not run in the driver's working directory: relative paths would point elsewhere."""
    data_options = dict(spec.data_options)
    if data_options.get("data_dir"):
        data_options["data_dir"] = os.path.abspath(data_options["data_dir"])
    return dataclasses.replace(spec, results_dir=os.path.abspath(spec.results_dir), data_options=data_options)


def connect(ray, address: str | None) -> bool:
    """Join the cluster at ``address``, or start a Ray instance on this machine; True if started here
    (and so to be shut down at the end). An already initialised Ray (a test's, a notebook's) is reused."""
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            # "local": a new instance even if RAY_ADDRESS or a `ray start` on this machine exists.
            ray.init(address="local", num_cpus=os.cpu_count(), **quiet)
    except Exception as error:  # noqa: BLE001 - Ray raises several kinds; the user needs one line.
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ClusterError(f"cannot start or join {where}: {_first_line(error)}") from None
    return True


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """One TCP connection to the cluster's head before Ray is asked: Ray itself retries an address that
    never answers for minutes (and Ctrl-C takes a while to reach it). 'auto' and 'local' are Ray's own
    words, left to Ray."""
    if address in ("auto", "local"):
        return
    where = address.removeprefix("ray://")
    host, separator, port = where.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"bad Ray address '{address}': expected HOST:PORT (ray start --head prints it), "
                           f"e.g. 192.168.1.10:6379")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = (f"no answer within {timeout:.0f} s" if isinstance(error, TimeoutError)
                  else (error.strerror or str(error)))
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({reason}); "
                           f"is `ray start --head` running there, and the port open?") from None


def check_resources(ray, specs: list[runner.RunSpec], cpus_per_run: int | None,
                    gpus_per_run: float | None) -> tuple[int, float, int]:
    """(CPUs per run, GPUs per GPU run, CPUs of the largest node); a request no node can meet is an
    error now rather than a task Ray would keep pending for ever."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    largest_node_cpus = int(max((node.get("CPU", 0) for node in nodes), default=0))
    largest_node_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    cpus = largest_node_cpus if cpus_per_run is None else cpus_per_run
    if cpus < 1:
        raise ClusterError(f"--cpus-per-run must be at least 1, got {cpus}")
    if cpus > largest_node_cpus:
        raise ClusterError(f"--cpus-per-run {cpus}: no node of the Ray cluster has that many CPUs "
                           f"(the largest has {largest_node_cpus})")
    gpus = 1.0 if gpus_per_run is None else gpus_per_run
    if any(spec.device == "gpu" for spec in specs):
        if gpus <= 0:
            raise ClusterError(f"--gpus-per-run must be more than 0 for GPU runs, got {gpus:g}")
        if gpus > largest_node_gpus:
            raise ClusterError(f"GPU runs need {gpus:g} GPU(s) on one node; the Ray cluster's largest has "
                               f"{largest_node_gpus:g}")
    return cpus, gpus, largest_node_cpus


def _print_plan(ray, specs: list[runner.RunSpec], cpus: int, gpus: float, largest_node_cpus: int) -> None:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    total_cpus = sum(int(node["Resources"].get("CPU", 0)) for node in nodes)
    sharing = ("runs share nodes: CodeCarbon tracks each run's processes, not the machine"
               if cpus < largest_node_cpus else "each run has its node to itself: CodeCarbon measures the machine")
    gpu_part = f", {gpus:g} GPU per GPU run" if any(spec.device == "gpu" for spec in specs) else ""
    print(f"[dlbench] {len(specs)} run(s) on Ray ({len(nodes)} node(s), {total_cpus} CPUs): {cpus} CPU(s) per run"
          f"{gpu_part}; {sharing}", flush=True)
    print(f"[dlbench] planned: {', '.join(spec.label() for spec in specs)}", flush=True)


@contextmanager
def results_marker(results_dir: str, enabled: bool = True):
    """A file with a random token in the driver's results directory: a task that reads the same token
    at the same path shares that directory, and its worker writes there directly. Yields
    (path, token), or None when disabled (every task then sends its files back)."""
    if not enabled:
        yield None
        return
    token = secrets.token_hex(16)
    path = Path(results_dir) / f".dlbench-shared-{token}"
    path.write_text(token)
    try:
        yield str(path), token
    finally:
        path.unlink(missing_ok=True)


def _run_tasks(ray, specs: list[runner.RunSpec], cpus: int, gpus: float, marker) -> int | None:
    """Submit every run, store each as it finishes with a progress line; returns how many failed, or
    None after Ctrl-C."""
    remote_run = ray.remote(run_on_node)
    pending = {}
    started, finished, failures = time.monotonic(), 0, 0
    try:
        for spec in specs:
            options = dict(num_cpus=cpus, num_gpus=gpus if spec.device == "gpu" else 0,
                           max_retries=0)  # A retry would re-run a half-finished run under the same id.
            pending[remote_run.options(**options).remote(dataclasses.asdict(spec), cpus, marker)] = spec
        while pending:
            # A timeout, so that Ctrl-C reaches this loop promptly.
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for reference in ready:
                spec = pending[reference]
                outcome = collect(ray, reference)
                record = store(spec, outcome)
                del pending[reference]  # Only now: after Ctrl-C, stop() stores what is still pending.
                finished += 1
                if record.get("status") != results.STATUS_OK:
                    failures += 1
                print(progress_line(finished, len(specs), spec, record, outcome["node"],
                                    time.monotonic() - started), flush=True)
    except KeyboardInterrupt:
        print("[dlbench] interrupted: pending runs cancelled, running ones stopped and recorded",
              file=sys.stderr, flush=True)
        stop(ray, pending)
        return None
    return failures


def collect(ray, reference) -> dict:
    """What the task returned (see run_on_node), or, for a task Ray lost, an outcome saying why."""
    try:
        return ray.get(reference)
    except ray.exceptions.RayError as error:
        return lost_task_outcome(error)


def lost_task_outcome(error: BaseException) -> dict:
    name = type(error).__name__
    cause = getattr(error, "cause", None) or error  # RayTaskError wraps what the task raised.
    reason = LOST_TASK_REASONS.get(name, "the Ray task failed")
    return {"record": None, "files": {}, "exit_status": None, "interrupted": False, "node": "", "host": "",
            "error": f"{reason} before the run was recorded ({type(cause).__name__}: {_first_line(cause)})"}


def store(spec: runner.RunSpec, outcome: dict) -> dict:
    """Store a finished task's run as a local run would be: its files and record where the driver's
    results directory lacks them (a stand-in record if there is none), then the CSV. Returns the
    record."""
    results_dir = Path(spec.results_dir)
    for relative_path, data in outcome["files"].items():
        _write_file_if_absent(results_dir / relative_path, data)
    record = outcome["record"]
    if record is not None and not results.has_record(results_dir, spec.experiment, spec.run_id):
        results.write_record(results_dir, record)
    if record is None:
        record = _stored_or_stand_in(spec, outcome)
    results.rebuild_csv(results_dir, spec.experiment)
    return record


def _write_file_if_absent(path: Path, data: bytes) -> None:
    """A history, log or artifact sent back by a node, written whole (temporary file, then rename)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _stored_or_stand_in(spec: runner.RunSpec, outcome: dict) -> dict:
    """The record already in the results directory, or a stand-in saying why there is none (like
    runner.execute's for a killed worker)."""
    path = results.record_path(spec.results_dir, spec.experiment, spec.run_id)
    if path.is_file():
        return json.loads(path.read_text())
    if outcome.get("error"):
        error = outcome["error"]
    else:
        error = (f"worker process ended with status {outcome['exit_status']} before writing its record "
                 f"(config column holds the overrides only)")
    row = spec.new_row(config=json.dumps(spec.overrides, sort_keys=True),
                       status=results.STATUS_INTERRUPTED if outcome["interrupted"] else results.STATUS_FAILED,
                       error=error)
    row.host = outcome["host"] or row.host  # The node's name, not the driver's.
    try:
        results.write_record(spec.results_dir, row)
    except results.ResultsWriteError as error:
        if error.errno != errno.EEXIST:
            raise
        # The worker wrote its own record meanwhile: when a Ray worker dies, Ray stops its child
        # processes with SIGTERM, which the worker records as 'interrupted'. Records are immutable: keep it.
        return json.loads(path.read_text())
    return dataclasses.asdict(row)


def progress_line(finished: int, total: int, spec: runner.RunSpec, record: dict, node: str, elapsed: float) -> str:
    """'[dlbench] 3/8 ok mlp_mnist/numpy/cpu [...] on 1a2b3c4d (host): test_accuracy=0.95 4.2 s 1.8 mg CO2 | ETA 12 s'."""
    status = record.get("status", "?")
    parts = [f"[dlbench] {finished}/{total} {status} {spec.label()}"]
    if node:
        parts.append(f"on {node}")
    value = record.get("metric_value")
    measured = [f"{record.get('metric') or 'metric'}={'n/a' if value is None else f'{value:.4g}'}"]
    if record.get("time_total_s") is not None:
        measured.append(progress.format_duration(record["time_total_s"]))
    if record.get("co2_kg") is not None:
        measured.append(progress.format_co2(record["co2_kg"]))
    if record.get("dataset_source") == "sample":  # The worker's warning about it is in the run's log only.
        measured.append("[shipped sample data, not the full set]")
    if status != results.STATUS_OK and record.get("error"):
        measured.append(f"({_first_line(record['error'])[:200]})")
    # The runs so far have come back at this rate; the rest will too, on the same nodes.
    remaining = total - finished
    eta = f" | ETA {progress.format_duration(elapsed / finished * remaining)}" if remaining else \
        f" | all done in {progress.format_duration(elapsed)}"
    return " ".join(parts) + ": " + " ".join(measured) + eta


def stop(ray, pending: dict) -> None:
    """After Ctrl-C: cancel every task not finished. Ray drops the pending ones; in a running one the
    cancellation raises KeyboardInterrupt, which stops its worker (see run_worker). Their records are
    then stored as usual; a task that still cannot say gets an 'interrupted' stand-in."""
    for reference in pending:
        ray.cancel(reference)
    for reference, spec in pending.items():
        try:
            outcome = ray.get(reference, timeout=STOP_WAIT_SECONDS + 30)
        except ray.exceptions.TaskCancelledError:
            # It never started (no record, as a local run never started has none), unless its worker
            # had just started and wrote one into the shared directory: then the CSV shows it.
            if results.has_record(spec.results_dir, spec.experiment, spec.run_id):
                results.rebuild_csv(spec.results_dir, spec.experiment)
            continue
        except ray.exceptions.RayError as error:  # Includes the timeout: the task did not answer.
            outcome = {**lost_task_outcome(error), "interrupted": True}
        record = store(spec, outcome)
        print(f"[dlbench] {spec.label()}: {record.get('status')}" + (f" on {outcome['node']}" if outcome["node"] else ""),
              file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# The task: what runs on a node
# --------------------------------------------------------------------------------------------------

def run_on_node(spec_values: dict, cpus_per_run: int, marker: tuple[str, str] | None) -> dict:
    """One run in a fresh worker process on this node (a Ray task; the driver gives it a node with
    ``cpus_per_run`` CPUs free). Returns the record (or None), the run's files when the driver cannot
    see this node's results directory, the worker's exit status and where it ran."""
    node_id, node_cpus = _this_node()
    host = socket.gethostname()
    shared = _sees_marker(marker)
    local_dir = None if shared else tempfile.mkdtemp(prefix="dlbench-run-")
    spec = runner.RunSpec(**{
        **spec_values,
        # Fewer CPUs than the node has: other runs may share it, so measure this run's processes only.
        "energy_tracking_mode": "machine" if cpus_per_run >= node_cpus else "process",
        "concurrent": cpus_per_run < node_cpus,
        "results_dir": spec_values["results_dir"] if shared else local_dir})
    try:
        exit_status, interrupted = run_worker(spec)
        record = _read_record(spec)
        files = {} if shared else _run_files(Path(local_dir), spec)
    finally:
        if local_dir:
            shutil.rmtree(local_dir, ignore_errors=True)
    return {"record": record, "files": files, "exit_status": exit_status, "interrupted": interrupted,
            "node": f"{node_id[:8]} ({host})", "host": host}


def _this_node() -> tuple[str, float]:
    """This node's Ray id and how many CPUs Ray gives it (not os.cpu_count(): `ray start --num-cpus`)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node["NodeID"] == node_id:
            return node_id, node["Resources"].get("CPU", 0)
    return node_id, float(os.cpu_count() or 1)


def _sees_marker(marker: tuple[str, str] | None) -> bool:
    if marker is None:
        return False
    path, token = marker
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def run_worker(spec: runner.RunSpec) -> tuple[int | None, bool]:
    """Start ``dlbench.worker`` as the local backend does and wait for it; (exit status, interrupted).
    Its console output goes to the run's log file beside the record, not to the driver's console."""
    log_path = results.runs_dir(spec.results_dir, spec.experiment) / f"{spec.run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = runner.child_environment(spec.device)
    environment["DLBENCH_PROGRESS"] = "lines"  # A log file is no terminal: no bar redrawn in it.
    process = None
    with open(log_path, "ab") as log:
        try:
            # In this Ray worker's process group: if the Ray worker dies, Ray's clean-up of the group
            # stops this process too instead of leaving it running unaccounted for.
            process = runner.start_worker(spec, environment, stdout=log, stderr=subprocess.STDOUT)
            return _wait(process), False
        except KeyboardInterrupt:  # ray.cancel() after Ctrl-C on the driver.
            if process is None:
                return None, True
            # SIGTERM, which the worker handles like Ctrl-C: it records 'interrupted' and exits.
            process.terminate()
            try:
                return process.wait(timeout=STOP_WAIT_SECONDS), True
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait(), True


def _wait(process: subprocess.Popen) -> int:
    """Ray raises a cancellation's KeyboardInterrupt between Python steps only, never inside a
    blocking wait: wait in short steps so that Ctrl-C stops the run within a second."""
    while True:
        try:
            return process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            continue


def _read_record(spec: runner.RunSpec) -> dict | None:
    try:
        return json.loads(results.record_path(spec.results_dir, spec.experiment, spec.run_id).read_text())
    except (OSError, ValueError):
        return None


def _run_files(local_dir: Path, spec: runner.RunSpec) -> dict[str, bytes]:
    """Every file the run wrote under its node-local results directory (history, log, artifacts),
    by path relative to it; the record itself travels as a dict."""
    record = results.record_path(local_dir, spec.experiment, spec.run_id)
    return {path.relative_to(local_dir).as_posix(): path.read_bytes()
            for path in sorted(local_dir.rglob("*"))
            if path.is_file() and path != record and not path.name.startswith(".")}


def _first_line(error) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
