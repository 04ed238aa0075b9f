"""Sampling profiles of a running process with py-spy (``pip install py-spy``; a dev
dependency), summarised as the functions with the most samples on the CPU.

py-spy writes collapsed stacks (``frame;frame;frame count``); the summary counts each function
once per sample for "total" (it or something it called was running) and at the top of the
stack for "self".
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Profiler", "summarise"]


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profiler:
    proc: subprocess.Popen[bytes] | None
    out: Path

    @classmethod
    def start(cls, pid: int, out: Path, rate: int = 100) -> Profiler:
        exe = _py_spy()
        if exe is None:
            return cls(None, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out.with_suffix(".txt")),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return cls(proc, out)

    def stop(self) -> dict[str, Any] | None:
        """Stop sampling (while the profiled process still runs) and summarise."""
        if self.proc is None:
            return {"error": "py-spy is not installed (pip install py-spy)"}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        path = self.out.with_suffix(".txt")
        with contextlib.suppress(OSError):
            return {"file": str(path), **summarise(path.read_text())}
        return {"error": "py-spy wrote no profile (is ptrace allowed?)"}


def _name(frame: str) -> str:
    # "handle (shared/consumer.py:123)" -> "handle (shared/consumer.py)": one entry per function
    head, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{head} ({file})" if file else head


def summarise(collapsed: str, top: int = 15) -> dict[str, Any]:
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    share = (lambda n: round(100 * n / samples, 1)) if samples else (lambda n: 0.0)
    return {
        "samples": samples,
        "top_self": [{"function": f, "percent": share(n)} for f, n in own.most_common(top)],
        "top_total": [{"function": f, "percent": share(n)} for f, n in total.most_common(top)],
    }
