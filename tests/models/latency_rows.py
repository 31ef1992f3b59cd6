"""Latency-contract rows binned from seeded numpy samples: honest inputs for the histogram, SQL and SLO tests,
since the samples behind every row are known and exact quantiles can be taken from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from ingest.contract import DEFAULT_SLO_THRESHOLD_NS, HISTOGRAM_SCALE, LATENCY_SCHEMA, conform
from models.histogram import from_samples

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def latency_table(rows: list[dict]) -> pa.Table:
    """One contract row per dict: `samples` (ns) plus any column to override (controller_id, op, ...)."""
    records = []
    for row in rows:
        samples = np.asarray(row.get("samples", []), dtype=np.float64)
        threshold = row.get("slo_threshold_ns", DEFAULT_SLO_THRESHOLD_NS)
        histogram = from_samples(samples)
        records.append(
            {
                "window_start": row.get("window_start", T0),
                "window_s": row.get("window_s", 60),
                "host": row.get("host", "host-0"),
                "controller_id": row.get("controller_id", "0xc0"),
                "memory_tier": row.get("memory_tier", "cxl"),
                "head_or_ld": 0,
                "op": row.get("op", "read"),
                "scale": HISTOGRAM_SCALE,
                "bucket_offset": histogram.offset,
                "bucket_counts": histogram.counts.astype(np.uint32),
                "count": samples.size,
                "sum_ns": float(samples.sum()),
                "min_ns": int(np.floor(samples.min())) if samples.size else 0,
                "max_ns": int(np.ceil(samples.max())) if samples.size else 0,
                "slo_threshold_ns": threshold,
                "over_slo": int((samples > threshold).sum()),
                "rd_bytes": 0,
                "wr_bytes": 0,
                "backpressure_avg_pct": 0,
            }
        )
    plain = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in LATENCY_SCHEMA])
    return conform(pa.Table.from_pylist(records, schema=plain), LATENCY_SCHEMA)


def lognormal_samples(rng: np.random.Generator, size: int, median_ns: float = 260.0, tail: float = 0.02) -> np.ndarray:
    """A CXL-like access latency mix: a lognormal body and a slower lognormal tail (telemetry.md §5)."""
    body = rng.lognormal(np.log(median_ns), 0.12, size)
    slow = rng.random(size) < tail
    body[slow] = rng.lognormal(np.log(median_ns * 2.2), 0.3, int(slow.sum()))
    return body


def random_fleet(rng: np.random.Generator, controllers: int = 4, windows: int = 6) -> tuple[pa.Table, dict]:
    """Rows for every controller × op × window, and the raw samples behind each row keyed the same way."""
    rows, samples = [], {}
    for c in range(controllers):
        for op in ("read", "write"):
            for w in range(windows):
                x = lognormal_samples(rng, int(rng.integers(200, 2000)), median_ns=220 + 30 * c, tail=0.01 * (c + 1))
                key = (f"0x{c:04x}", op, w)
                samples[key] = x
                rows.append(
                    {
                        "samples": x,
                        "controller_id": key[0],
                        "host": f"host-{c // 2}",
                        "op": op,
                        "window_start": minute(w),
                    }
                )
    return latency_table(rows), samples
