"""The machine a benchmark ran on, for the first line of its output."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """e.g. `2 CPUs, AMD EPYC, Python 3.11.7`."""
    return f"{os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}"
