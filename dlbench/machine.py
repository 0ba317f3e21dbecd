"""Which machine a run measured on, and what else ran on it meanwhile.

Two figures are comparable only when they come from the same hardware with nothing else competing for
it. Every record therefore carries the machine's fingerprint (``fingerprint()``: CPU model, logical
cores, memory, GPU models, OS, BLAS, a hash of the host name) and its short label (``label()``, what
comparisons group by), and the CPU that *other* processes used while it ran (``CpuWatch``).
``exclusive()`` is the machine-wide lock that makes a second ``dlbench run`` wait instead of sharing
the cores. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

# A run is "contended" when other processes used more than this share of the machine's CPU on average:
# on 2 cores one busy loop beside a run already takes 50 % and slows a 2-thread training up to 2x.
CONTENDED_SHARE = 0.10
SAMPLE_SECONDS = 1.0
# Below this a run's mean is a handful of 10 ms clock ticks (another process's fsync, a kernel thread):
# too few to call it contended or not, so it is recorded as not judged.
MIN_JUDGED_SECONDS = 2.0


# --------------------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------------------

def cpu_model() -> str:
    return _cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} elsewhere)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_generation() -> str:
    """What the model name hides: "AMD EPYC" is the name of several generations (family 25 model 1 is
    Milan, without AVX-512; family 25 model 17 is Genoa, with it), whose speeds differ by up to 2x."""
    fields = _cpuinfo_fields()
    flags = set(fields.get("flags", "").split())
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "avx" if "avx" in flags else ""
    family = f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields and "model" in fields else ""
    return ", ".join(part for part in (family, isa) if part) or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def gpu_models() -> tuple[str, ...]:
    """GPU names from ``nvidia-smi -L`` (no CUDA initialised here); () when there is none."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    # "GPU 0: NVIDIA H200 (UUID: GPU-...)" -> "NVIDIA H200"
    return tuple(line.split(":", 1)[1].split("(UUID")[0].strip() for line in listing.splitlines()
                 if line.startswith("GPU ") and ":" in line)


def blas() -> str:
    """NumPy's BLAS library and version (threadpoolctl), without loading anything else."""
    try:
        from threadpoolctl import threadpool_info

        import numpy  # noqa: F401 - loads its BLAS so threadpoolctl can see it.

        libraries = [f"{info.get('internal_api')} {info.get('version')}" for info in threadpool_info()
                     if info.get("user_api") == "blas"]
        return ", ".join(dict.fromkeys(libraries)) or "unknown"
    except Exception:  # noqa: BLE001 - a fact we could not read is "unknown", never an error.
        return "unknown"


@functools.lru_cache(maxsize=1)
def fingerprint() -> dict:
    """What makes two machines' timings comparable or not. The host name is hashed, not stored."""
    return {
        "cpu": cpu_model(),
        "cpu_generation": cpu_generation(),
        "logical_cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpus": list(gpu_models()),
        "os": f"{platform.system()} {platform.release()}",
        "blas": blas(),
        "host_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:10],
    }


def label(facts: dict | None = None) -> str:
    """The short name comparisons group by: the hardware only (CPU model and generation, cores, memory,
    GPUs), so runs on two identical machines pool and runs on two processor generations never do."""
    facts = facts or fingerprint()
    memory = facts.get("memory_gib")
    generation = f" ({facts['cpu_generation']})" if facts.get("cpu_generation") else ""
    text = f"{facts.get('cpu')}{generation} x{facts.get('logical_cores')}" + (f", {memory:.0f} GiB" if memory else "")
    gpus = facts.get("gpus") or []
    if gpus:
        text += ", " + " + ".join(f"{gpus.count(name)}x {name}" for name in dict.fromkeys(gpus))
    return text


# --------------------------------------------------------------------------------------------------
# Contention: the CPU other processes used while a run executed
# --------------------------------------------------------------------------------------------------

def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores), from /proc/stat via psutil."""
    import psutil

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    # Guest time is already counted in user time on Linux.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return total - idle


def _own_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


class CpuWatch:
    """Samples, about once a second in a thread, the machine's busy CPU time and this process's own;
    the difference is what other processes used. ``stop()`` returns the row's contention fields.

    Shares are of the whole machine (1.0 = every core busy). The mean is from the totals at start and
    stop, so a run shorter than one sample is measured too; the maximum is over the 1-second samples."""

    def __init__(self, interval: float = SAMPLE_SECONDS):
        self.interval = interval
        self.error = ""
        self._thread = None
        self._done = threading.Event()
        self._samples: list[float] = []
        self._load_max = 0.0

    def start(self) -> "CpuWatch":
        try:
            import psutil

            self._process = psutil.Process()
            self._cores = psutil.cpu_count() or 1
            self._start = self._last = (time.monotonic(), _busy_seconds(), _own_seconds(self._process))
            self._load_max = os.getloadavg()[0]
        except Exception as error:  # noqa: BLE001 - measurement never stops a run.
            self.error = f"{type(error).__name__}: {error}"
            return self
        self._thread = threading.Thread(target=self._watch, name="dlbench-cpu-watch", daemon=True)
        self._thread.start()
        return self

    def _reading(self):
        return time.monotonic(), _busy_seconds(), _own_seconds(self._process)

    def _other_share(self, before, after) -> float | None:
        wall = after[0] - before[0]
        if wall <= 0:
            return None
        other = (after[1] - before[1]) - (after[2] - before[2])
        return min(max(other / (wall * self._cores), 0.0), 1.0)

    def _watch(self) -> None:
        while not self._done.wait(self.interval):
            try:
                reading = self._reading()
                share = self._other_share(self._last, reading)
                if share is not None:
                    self._samples.append(share)
                self._last = reading
                self._load_max = max(self._load_max, os.getloadavg()[0])
            except Exception:  # noqa: BLE001
                return

    def stop(self) -> dict:
        """cpu_other_share (mean), cpu_other_share_max, cpu_own_share, load_max, contended."""
        if self._thread is None:
            return {"contention_note": f"not measured: {self.error}" if self.error else "not measured"}
        self._done.set()
        self._thread.join(timeout=5)
        try:
            end = self._reading()
        except Exception as error:  # noqa: BLE001
            return {"contention_note": f"not measured: {type(error).__name__}: {error}"}
        other = self._other_share(self._start, end)
        wall = end[0] - self._start[0]
        own = (end[2] - self._start[2]) / (wall * self._cores) if wall > 0 else None
        judged = other is not None and wall >= MIN_JUDGED_SECONDS
        return {
            "cpu_other_share": other,
            "cpu_other_share_max": max(self._samples + ([other] if other is not None else [])) if (
                self._samples or other is not None) else None,
            "cpu_own_share": own,
            "load_max": round(max(self._load_max, os.getloadavg()[0]), 2),
            "contended": other > CONTENDED_SHARE if judged else None,
            "contention_note": "" if judged else f"not judged: the run took {wall:.1f} s (under {MIN_JUDGED_SECONDS:g} s)",
        }


# --------------------------------------------------------------------------------------------------
# One measurement at a time
# --------------------------------------------------------------------------------------------------

def lock_path() -> Path:
    """$DLBENCH_LOCK_DIR, else the user's cache directory: one lock for every checkout on the machine."""
    directory = os.environ.get("DLBENCH_LOCK_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dlbench")
    return Path(directory) / "measurement.lock"


class MachineLock:
    """The machine-wide lock a `dlbench run` / `study` holds while it measures.

    ``acquire()`` waits (saying once for which run) while another dlbench process holds it; the holder
    writes what it is running into the file so the waiting one can say so. The lock is an ``flock``:
    the kernel releases it when its holder dies, so a killed run never leaves the machine locked."""

    def __init__(self, path: Path | None = None, stream=None):
        self.path = path or lock_path()
        self.stream = stream or sys.stderr
        self.waited_s = 0.0
        self._file = None

    def acquire(self) -> "MachineLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+")
        except OSError as error:  # No lock where none can be made: say so and measure anyway.
            print(f"[dlbench] warning: cannot use the measurement lock {self.path} ({error}); "
                  f"other dlbench runs on this machine will not wait for this one", file=self.stream, flush=True)
            self._file = None
            return self
        start = time.monotonic()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[dlbench] waiting: another dlbench measurement runs on this machine ({self.holder()}); "
                  f"this one starts when it ends, so neither shares the cores (--concurrent: run now, "
                  f"recorded as concurrent)", file=self.stream, flush=True)
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self.waited_s = time.monotonic() - start
        return self

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "holder unknown"
        return f"run {info.get('run', '?')}, pid {info.get('pid', '?')}, since {info.get('since', '?')}"

    def now_running(self, run: str) -> None:
        """Say which run the holder is measuring now (read by a waiting process)."""
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(json.dumps({"run": run, "pid": os.getpid(),
                                         "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
            self._file.flush()
        except OSError:
            pass

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            self._file.close()
            self._file = None


@contextmanager
def exclusive(enabled: bool = True, stream=None):
    """Hold the machine-wide measurement lock for the block (a no-op lock when not ``enabled``)."""
    lock = MachineLock(stream=stream)
    if enabled:
        lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
