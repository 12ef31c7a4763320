"""Prometheus metrics without a client library: counters, gauges and histograms kept in
this process, rendered in the text exposition format (version 0.0.4) by `render()`.

Values that belong to the stores (projection positions and lags, dead letters) are not
kept here: the scrape computes them (api/routes/ops.py) and passes them to `render`.
"""
from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field
from typing import Iterable

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"' for k, v in labels)
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class Metric:
    name: str
    help: str
    kind: str  # counter | gauge | histogram
    buckets: tuple[float, ...] = ()
    _values: dict[Labels, float] = field(default_factory=dict)
    _hist: dict[Labels, list[float]] = field(default_factory=dict)  # bucket counts..., sum, count
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = value

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            row = self._hist.get(key)
            if row is None:
                row = self._hist[key] = [0.0] * (len(self.buckets) + 2)
            index = bisect.bisect_left(self.buckets, value)  # the first bucket with value <= le
            if index < len(self.buckets):
                row[index] += 1
            row[-2] += value
            row[-1] += 1

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def count(self, **labels: str) -> int:
        row = self._hist.get(tuple(sorted(labels.items())))
        return int(row[-1]) if row else 0

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        with self._lock:
            if self.kind != "histogram":
                for labels, value in sorted(self._values.items()):
                    yield f"{self.name}{_labels(labels)} {_number(value)}"
                return
            for labels, row in sorted(self._hist.items()):
                running = 0.0
                for bound, count in zip(self.buckets, row):
                    running += count
                    yield f"{self.name}_bucket{_labels(labels + (('le', _number(bound)),))} {_number(running)}"
                yield f"{self.name}_bucket{_labels(labels + (('le', '+Inf'),))} {_number(row[-1])}"
                yield f"{self.name}_sum{_labels(labels)} {_number(row[-2])}"
                yield f"{self.name}_count{_labels(labels)} {_number(row[-1])}"


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}

    def _add(self, metric: Metric) -> Metric:
        return self.metrics.setdefault(metric.name, metric)

    def counter(self, name: str, help: str) -> Metric:
        return self._add(Metric(name, help, "counter"))

    def gauge(self, name: str, help: str) -> Metric:
        return self._add(Metric(name, help, "gauge"))

    def histogram(self, name: str, help: str, buckets: Iterable[float]) -> Metric:
        return self._add(Metric(name, help, "histogram", tuple(sorted(buckets))))

    def render(self, extra: Iterable[Metric] = ()) -> str:
        out: list[str] = []
        for metric in [*self.metrics.values(), *extra]:
            out.extend(metric.lines())
        return "\n".join(out) + "\n"


REGISTRY = Registry()

REQUEST_SECONDS = REGISTRY.histogram(
    "photostream_http_request_duration_seconds",
    "HTTP request latency by method, route template and status.",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_APPENDED = REGISTRY.counter("photostream_events_appended_total", "Events appended to the log by this process, by type.")
EVENTS_SKIPPED = REGISTRY.counter(
    "photostream_events_skipped_total", "Events of a type or version this code does not know, skipped when read, by type."
)
READ_STORE_QUERIES = REGISTRY.counter(
    "photostream_read_store_queries_total",
    "Queries this process sent to the read store (Cassandra requests, SQLite statements), by table: what reads cost.",
)
WRITES_PER_EVENT = REGISTRY.histogram(
    "photostream_projection_writes_per_event",
    "Writes one event caused in one projection (for home_timeline: the fan-out batch size).",
    (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
