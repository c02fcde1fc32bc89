"""Prometheus text-format metrics of one server process.

Counters and histograms live in the process that answers; with ``--workers N`` each worker
keeps its own and labels every sample with ``worker="<pid>"`` (a scrape reaches one worker;
sum over the label to aggregate).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list:
        sep = "," if labels else ""
        out = [
            f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {c}'
            for b, c in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.total}")
        return out


class Metrics:
    """Request counts by endpoint and status, latency and batch-size histograms, model load time."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict = defaultdict(int)
        self.latency: dict = {}
        self.batches = _Histogram(BATCH_BUCKETS)
        self.load_seconds = 0.0
        self.worker = str(os.getpid())

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, int(status))] += 1
            self.latency.setdefault(endpoint, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self.batches.observe(size)

    def render(self) -> str:
        w = f'worker="{self.worker}"'
        with self._lock:
            lines = [
                "# HELP convscope_requests_total HTTP requests answered, by endpoint and status.",
                "# TYPE convscope_requests_total counter",
            ]
            for (ep, status), n in sorted(self.requests.items()):
                lines.append(f'convscope_requests_total{{{w},endpoint="{ep}",status="{status}"}} {n}')
            lines += [
                "# HELP convscope_request_seconds Time from request to response, by endpoint.",
                "# TYPE convscope_request_seconds histogram",
            ]
            for ep, hist in sorted(self.latency.items()):
                lines += hist.lines("convscope_request_seconds", f'{w},endpoint="{ep}"')
            lines += [
                "# HELP convscope_batch_size Images per model call of the predict batcher.",
                "# TYPE convscope_batch_size histogram",
            ]
            lines += self.batches.lines("convscope_batch_size", w)
            lines += [
                "# HELP convscope_model_load_seconds Time to load the model at start-up.",
                "# TYPE convscope_model_load_seconds gauge",
                f"convscope_model_load_seconds{{{w}}} {self.load_seconds:.6f}",
            ]
        return "\n".join(lines) + "\n"
