"""Kafka's own benchmark tools (the ``kafka-tools`` jar next to the broker's): the baselines.

``kafka-consumer-perf-test`` reads one topic per run, so the five event topics are read one
after the other and their figures combined (messages over the summed fetch time, which excludes
the tool's JVM start and its group join, as the tool itself does).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KafkaTools", "PerfResult"]


@dataclass(frozen=True)
class PerfResult:
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class KafkaToolError(RuntimeError):
    pass


class KafkaTools:
    def __init__(self, lib: Path, bootstrap: str) -> None:
        if not any(lib.glob("kafka-tools-*.jar")):
            raise KafkaToolError(
                f"no kafka-tools jar in {lib}: run scripts/bootstrap (deploy/local/kafka/pom.xml "
                "lists org.apache.kafka:kafka-tools)"
            )
        java = shutil.which("java")
        if java is None:
            raise KafkaToolError("java not found: run scripts/bootstrap")
        self.java = java
        self.classpath = f"{lib}/*"
        self.bootstrap = bootstrap

    async def _run(self, main: str, *args: str, within: float = 900) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.java,
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Dlog4j2.level=WARN",
            "-cp",
            self.classpath,
            main,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), within)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise KafkaToolError(f"{main} did not finish within {within:.0f}s") from None
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise KafkaToolError(f"{main} exited with {proc.returncode}:\n{text[-3000:]}")
        return text

    async def consume(self, counts: dict[str, int]) -> PerfResult:
        """kafka-consumer-perf-test over each topic (with its record count), combined."""
        records = 0
        seconds = 0.0
        for topic, n in counts.items():
            if n == 0:
                continue
            text = await self._run(
                "org.apache.kafka.tools.ConsumerPerformance",
                "--bootstrap-server",
                self.bootstrap,
                "--topic",
                topic,
                "--messages",
                str(n),
                "--group",
                f"bench-perf-{uuid.uuid4().hex[:8]}",
                "--timeout",
                "30000",
            )
            fields = _last_data_row(text, "fetch.time.ms")
            records += int(float(fields["data.consumed.in.nMsg"]))
            seconds += float(fields["fetch.time.ms"]) / 1000
        return PerfResult(records, seconds)

    async def produce(self, topic: str, records: int, payload_file: Path) -> PerfResult:
        """kafka-producer-perf-test with real event payloads and the relay's producer settings
        (acks=all, idempotent, batches up to 1 MiB), with a linger of 5 ms: the relay hands over
        whole batches and lingers not at all, a producer sending record by record batches only
        by lingering."""
        text = await self._run(
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--throughput",
            "-1",
            "--payload-file",
            str(payload_file),
            "--producer-props",
            f"bootstrap.servers={self.bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            "linger.ms=5",
            "batch.size=1048576",
        )
        totals = re.findall(r"(\d+) records sent, ([\d.]+) records/sec", text)
        if not totals:  # the last such line is the total
            raise KafkaToolError(f"unexpected ProducerPerformance output:\n{text[-2000:]}")
        sent, per_second = int(totals[-1][0]), float(totals[-1][1])
        return PerfResult(sent, sent / per_second)


def _last_data_row(text: str, header_marker: str) -> dict[str, str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if header_marker in line and i + 1 < len(lines):
            header = [h.strip() for h in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            if len(values) == len(header):
                return dict(zip(header, values, strict=True))
    raise KafkaToolError(f"unexpected ConsumerPerformance output:\n{text[-2000:]}")
