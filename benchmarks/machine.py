"""What a benchmark prints about the machine it ran on, so that runs on different days compare:
the CPU model and core count, the load average, and the share of CPU time the virtual machine's
host took away ("steal", from ``/proc/stat``; on the 2-core project machines it has ranged from
~2% to ~50%, and it moves every timing).

Used by ``bench_targets.py`` and ``bench_scale.py`` (run as scripts from ``benchmarks/``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) CPU ticks since boot, summed over cores (``/proc/stat``); None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def started(name: str) -> tuple[int, int] | None:
    """Print the opening line of benchmark ``name`` and return the CPU ticks to pass to
    :func:`ended`."""
    print(f"{name}: {os.cpu_count()} cores ({cpu_model()}), load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    return cpu_ticks()


def ended(start: tuple[int, int] | None) -> str:
    """The load average now and the CPU steal since ``start`` (percent of all CPU time), as text."""
    text = f"load average at the end {os.getloadavg()[0]:.1f}"
    end = cpu_ticks()
    if start is not None and end is not None and end[1] > start[1]:
        text += f", CPU steal {100 * (end[0] - start[0]) / (end[1] - start[1]):.0f}% during the run"
    return text
