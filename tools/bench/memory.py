"""Peak resident memory of the processes under test, read from /proc (Linux only).

A thread samples ``VmRSS`` of every watched process twice a second; ``VmHWM`` (the kernel's own
high-water mark since the process started) is read too while the process lives, so that a peak
between two samples is not missed. For a service that was already running before the benchmark
(the default stack), VmHWM includes what it used before the run: the table says "since start".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MemoryWatch"]

MIB = 1024 * 1024


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class _Watched:
    pid: int
    peak_rss_kib: int = 0
    hwm_kib: int = 0
    samples: int = 0


@dataclass
class MemoryWatch:
    interval: float = 0.5
    watched: dict[str, _Watched] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            current = self.watched.get(name)
            if current is None or current.pid != pid:
                self.watched[name] = _Watched(pid)
        self._sample()

    def _sample(self) -> None:
        with self._lock:
            for w in self.watched.values():
                rss = _status_kib(w.pid, "VmRSS")
                if rss is None:
                    continue
                w.samples += 1
                w.peak_rss_kib = max(w.peak_rss_kib, rss)
                w.hwm_kib = max(w.hwm_kib, _status_kib(w.pid, "VmHWM") or 0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def peaks_mib(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                name: {
                    "pid": w.pid,
                    "peak_rss_mib": round(w.peak_rss_kib / 1024, 1),
                    "high_water_mark_mib": round(max(w.hwm_kib, w.peak_rss_kib) / 1024, 1),
                }
                for name, w in self.watched.items()
            }
