"""Facts about the machine and the code that every result row records."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import dlbench
from dlbench import machine

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return {
        "python_version": platform.python_version(),
        "tensorflow_version": package_version("tensorflow"),
        "keras_version": package_version("keras"),
        "numpy_version": package_version("numpy"),
        "codecarbon_version": package_version("codecarbon"),
        "dlbench_version": dlbench.__version__,
    }


def git_commit() -> str:
    """The checkout's commit, with '-dirty' when tracked files differ from it."""
    if shutil.which("git") is None or not (_PROJECT_ROOT / ".git").exists():
        return "unknown (not a git checkout)"
    try:
        commit = subprocess.run(["git", "-C", str(_PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        # The results directory changes with every run: only code and configuration make a checkout dirty.
        dirty = subprocess.run(["git", "-C", str(_PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no",
                                "--", ".", ":(exclude)results"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("-dirty" if dirty else "")


def host() -> str:
    return socket.gethostname()


def cpu_name() -> str:
    return machine.cpu_model()


def nvidia_gpu_listed() -> bool:
    """Cheap first check (no TensorFlow import): does nvidia-smi list a GPU?"""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "GPU" in listing


def tensorflow_sees_gpu() -> tuple[bool, str]:
    """Ask TensorFlow in a separate process, so this process never initialises CUDA."""
    probe = ("import tensorflow as tf; g = tf.config.list_physical_devices('GPU'); "
             "print(len(g)); print(tf.config.experimental.get_device_details(g[0]).get('device_name', '') if g else '')")
    try:
        output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.split("\n")
        return int(output[0]) > 0, output[1].strip()
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return False, ""


@functools.lru_cache(maxsize=1)
def gpu_available() -> tuple[bool, str]:
    """(available, reason or device name)."""
    if not nvidia_gpu_listed():
        return False, "nvidia-smi lists no GPU (no NVIDIA driver or no device)"
    seen, name = tensorflow_sees_gpu()
    if not seen:
        return False, "nvidia-smi lists a GPU but TensorFlow sees none (install dlbench[gpu], i.e. tensorflow[and-cuda])"
    return True, name


# --------------------------------------------------------------------------------------------------
# Country codes for CodeCarbon's offline carbon intensity
# --------------------------------------------------------------------------------------------------

# OfflineEmissionsTracker looks country_iso_code up in this table of CodeCarbon's (codecarbon/input.py,
# DataSource.get_global_energy_mix_data); a code missing from it is only logged, and the emissions are
# then computed with the world average, so a typo would silently give wrong CO2 figures.
_CODECARBON_COUNTRIES_FILE = ("data", "private_infra", "global_energy_mix.json")


@functools.lru_cache(maxsize=1)
def carbon_countries_path() -> Path | None:
    """CodeCarbon's table of country energy mixes, found without importing CodeCarbon: the command line
    checks its input before anything runs, and importing CodeCarbon loads its tracker and hardware
    modules. None when CodeCarbon is not installed or the file is not there."""
    try:
        spec = importlib.util.find_spec("codecarbon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*_CODECARBON_COUNTRIES_FILE)
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=1)
def carbon_countries() -> dict[str, str]:
    """ISO 3166 alpha-3 code -> country name, for every country CodeCarbon has an offline carbon
    intensity for; empty when its table cannot be found or read."""
    path = carbon_countries_path()
    if path is None:
        return {}
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(table, dict):
        return {}
    # Older releases had a "_define" entry describing the columns; only three-letter codes are countries.
    return {
        code: str(entry.get("country_name", code))
        for code, entry in table.items()
        if isinstance(entry, dict) and len(code) == 3 and code.isalpha() and code.isupper()
    }


def check_country(code: str) -> str:
    """The upper-cased code when CodeCarbon knows it; ValueError with one line when it does not.

    CodeCarbon looks the code up as given, so "fra" would miss; hence the upper-casing. When its table
    cannot be found the code is returned unchanged: nothing here should block a run that CodeCarbon
    itself may handle (it then reports the problem)."""
    countries = carbon_countries()
    if not countries:
        return code
    upper = code.strip().upper()
    if upper in countries:
        return upper
    raise ValueError(
        f"unknown country code '{code}' for the carbon intensity; use an ISO 3166 alpha-3 code that CodeCarbon "
        f"knows (e.g. FRA, DEU, USA; the list is in {carbon_countries_path()})"
    )
