"""Latency histograms: a log-normal body plus a slow-access tail, binned in the contract's base-2 layout.

A mixture in log space is shift-invariant: moving the median by whole buckets only moves `bucket_offset`. So the
fast path precomputes a bank of honest sample sets (templates) in bucket-index space, keyed by shape (tail
heaviness from load, storms and link state), sample count and a noise variant, and a row only picks a template
and an offset. Raw mode draws every row's samples afresh (continuous median) and bins them exactly: it is the
path tests use to compare quantiles from merged histograms with exact quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ingest.contract import HISTOGRAM_BASE, HISTOGRAM_SCALE, bucket_index
from ingest.sim.config import LatencyKnobs

BUCKETS_PER_OCTAVE = 2**HISTOGRAM_SCALE
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class Shapes:
    """Mixture parameters per shape level: levels 0..L-1 by stress, then the same L under a CE storm."""

    body_sigma: np.ndarray
    tail_weight: np.ndarray
    tail_mu: np.ndarray
    tail_sigma: float

    @classmethod
    def from_knobs(cls, knobs: LatencyKnobs) -> Shapes:
        x = np.linspace(0.0, 1.0, knobs.stress_levels)
        body = knobs.body_sigma_idle + (knobs.body_sigma_loaded - knobs.body_sigma_idle) * x**2
        weight = knobs.tail_weight_idle + (knobs.tail_weight_loaded - knobs.tail_weight_idle) * x**3
        low, high = knobs.tail_median_multiplier
        mu = np.log(low + (high - low) * x)
        return cls(
            body_sigma=np.concatenate([body, body]),
            tail_weight=np.concatenate([weight, weight + knobs.storm_tail_weight]),
            tail_mu=np.concatenate([mu, mu]),
            tail_sigma=knobs.tail_sigma,
        )

    def draw_log_ratio(self, rng: np.random.Generator, shape: np.ndarray) -> np.ndarray:
        """ln(latency / median) for one sample per entry of `shape`."""
        tail = rng.random(shape.size) < self.tail_weight[shape]
        mean = np.where(tail, self.tail_mu[shape], 0.0)
        sigma = np.where(tail, self.tail_sigma, self.body_sigma[shape])
        return mean + sigma * rng.standard_normal(shape.size)


def median_bucket(median_ns: np.ndarray) -> np.ndarray:
    """The whole-bucket position of a median: latency = base**K * exp(log ratio); 16 ns to 1 ms."""
    k = np.rint(np.log2(median_ns) * BUCKETS_PER_OCTAVE).astype(np.int64)
    return np.clip(k, _K_RANGE[0], _K_RANGE[1] - 1)


# Bucket bounds as whole ns, looked up rather than recomputed per row: buckets -512..1023 span 2e-10 to 1.6e19 ns.
_BUCKET_LOW = -512
_BUCKETS = np.arange(_BUCKET_LOW, 1024, dtype=float)
_FIRST_NS_IN = np.floor(HISTOGRAM_BASE**_BUCKETS) + 1  # smallest whole ns in (base**i, base**(i+1)]
_LAST_NS_IN = np.maximum(_FIRST_NS_IN, np.floor(HISTOGRAM_BASE ** (_BUCKETS + 1)))
_BASE_POWER = HISTOGRAM_BASE**_BUCKETS
# Medians the bank serves, as buckets: 2**(64/16) = 16 ns to 2**(320/16) ≈ 1 ms.
_K_RANGE = (64, 320)


def bucket_lower_bound(bucket: np.ndarray) -> np.ndarray:
    """base**bucket, by table lookup."""
    return _BASE_POWER[np.asarray(bucket) - _BUCKET_LOW]


def ns_within_bucket(value_ns: np.ndarray, bucket: np.ndarray) -> np.ndarray:
    """Round to whole ns but stay inside bucket (base**i, base**(i+1)], so min/max agree with the buckets."""
    index = np.asarray(bucket) - _BUCKET_LOW
    return np.clip(np.rint(value_ns), _FIRST_NS_IN[index], _LAST_NS_IN[index]).astype(np.uint32)


@dataclass(frozen=True)
class Histograms:
    """Histogram columns for a set of rows; `order` says which input row each output row is."""

    order: np.ndarray
    bucket_offset: np.ndarray
    bucket_counts: pa.Array
    count: np.ndarray
    sum_ns: np.ndarray
    min_ns: np.ndarray
    max_ns: np.ndarray
    over_slo: np.ndarray


class TemplateBank:
    """Precomputed sample sets per (shape, count level, variant), trimmed to their non-zero bucket range."""

    def __init__(self, knobs: LatencyKnobs, rng: np.random.Generator) -> None:
        self.shapes = Shapes.from_knobs(knobs)
        self.n_shapes = self.shapes.body_sigma.size
        self.count_levels = knobs.count_levels
        self.variants = knobs.template_variants
        low, high = knobs.samples_per_window
        self.level_counts = np.rint(low * (high / low) ** np.linspace(0, 1, knobs.count_levels)).astype(np.int64)
        self.slo_bucket = bucket_index(knobs.slo_threshold_ns)  # samples <= threshold sit in buckets <= this
        values, lengths, first, relsum, relmin, relmax = [], [], [], [], [], []
        for shape in range(self.n_shapes):
            for level in range(self.count_levels):
                for _ in range(self.variants):
                    n = int(self.level_counts[level])
                    log_ratio = self.shapes.draw_log_ratio(rng, np.full(n, shape))
                    relative = np.ceil(log_ratio * (BUCKETS_PER_OCTAVE / _LN2)).astype(np.int64) - 1
                    counts = np.bincount(relative - relative.min())
                    values.append(counts.astype(np.uint32))
                    lengths.append(counts.size)
                    first.append(relative.min())
                    ratio = np.exp(log_ratio)
                    relsum.append(ratio.sum())
                    relmin.append(ratio.min())
                    relmax.append(ratio.max())
        self.values = np.concatenate(values)
        self.lengths = np.asarray(lengths, np.int32)
        self.starts = np.cumsum(self.lengths, dtype=np.int64) - self.lengths
        self.first = np.asarray(first, np.int32)
        level_of = (np.arange(self.lengths.size) // self.variants) % self.count_levels
        self.count = self.level_counts[level_of].astype(np.uint64)
        # below[t, p + 1] = samples of template t in its buckets 0..p (p = -1 .. length-1, then all).
        self.below = np.zeros((self.lengths.size, int(self.lengths.max()) + 2), np.uint64)
        for template, counts in enumerate(values):
            self.below[template, 1 : counts.size + 1] = np.cumsum(counts)
            self.below[template, counts.size + 1 :] = counts.sum()
        self.relsum = np.asarray(relsum)
        # Whole-ns min and max per (template, median bucket K), so rows only look them up.
        k = np.arange(_K_RANGE[0], _K_RANGE[1])
        scaled = bucket_lower_bound(k)[None, :]
        first_bucket = self.first[:, None] + k[None, :]
        self.min_ns = ns_within_bucket(np.asarray(relmin)[:, None] * scaled, first_bucket).ravel()
        last_bucket = first_bucket + self.lengths[:, None] - 1
        self.max_ns = ns_within_bucket(np.asarray(relmax)[:, None] * scaled, last_bucket).ravel()

    def template_id(self, shape: np.ndarray, level: np.ndarray, variant: np.ndarray) -> np.ndarray:
        return ((shape * self.count_levels + level) * self.variants + variant).astype(np.uint16)

    def histograms(self, template: np.ndarray, median_k: np.ndarray, group: np.ndarray) -> Histograms:
        """Rows grouped by (group, template) with a radix sort, so their bucket lists are whole-template copies."""
        key = group.astype(np.int64) * self.lengths.size + template
        order = np.argsort(key.astype(np.uint16) if key.max(initial=0) < 2**16 else key, kind="stable")
        template = template[order].astype(np.int32)
        k = median_k[order].astype(np.int32)
        offset = k + self.first[template]
        length = self.lengths[template]
        position = np.clip(self.slo_bucket - offset, -1, self.below.shape[1] - 2)
        count = self.count[template]
        by_median = template * (_K_RANGE[1] - _K_RANGE[0]) + (k - _K_RANGE[0])
        return Histograms(
            order=order,
            bucket_offset=offset,
            bucket_counts=self._bucket_lists(template, length),
            count=count,
            sum_ns=self.relsum[template] * bucket_lower_bound(k),
            min_ns=self.min_ns[by_median],
            max_ns=self.max_ns[by_median],
            over_slo=count - self.below[template, position + 1],
        )

    def _bucket_lists(self, sorted_template: np.ndarray, length: np.ndarray) -> pa.Array:
        offsets = np.zeros(sorted_template.size + 1, np.int32)
        np.cumsum(length, out=offsets[1:])
        # Arrow's pool reuses freed memory; a fresh numpy array would page-fault every chunk.
        buffer = pa.allocate_buffer(int(offsets[-1]) * 4)
        values = np.frombuffer(buffer, np.uint32)
        first_row = np.flatnonzero(np.diff(sorted_template, prepend=-1))
        used = sorted_template[first_row]
        repeats = np.diff(first_row, append=sorted_template.size)
        for template, row, times in zip(used.tolist(), first_row.tolist(), repeats.tolist(), strict=True):
            width = int(self.lengths[template])
            start = int(self.starts[template])
            block = values[offsets[row] : offsets[row] + times * width]
            block.reshape(times, width)[:] = self.values[start : start + width]
        flat = pa.Array.from_buffers(pa.uint32(), values.size, [None, buffer])
        return pa.ListArray.from_arrays(pa.array(offsets), flat)


def raw_histograms(
    rng: np.random.Generator, shapes: Shapes, shape: np.ndarray, count: np.ndarray, median_ns: np.ndarray, slo_ns: int
) -> tuple[Histograms, np.ndarray, np.ndarray]:
    """Draw every sample, bin it exactly; also return (row of each sample, sample ns) for the samples table."""
    row = np.repeat(np.arange(count.size), count)
    sample = median_ns[row] * np.exp(shapes.draw_log_ratio(rng, shape[row]))
    bucket = np.ceil(np.log2(sample) * BUCKETS_PER_OCTAVE).astype(np.int64) - 1
    starts = np.cumsum(count) - count
    low = np.minimum.reduceat(bucket, starts)
    high = np.maximum.reduceat(bucket, starts)
    offsets = np.zeros(count.size + 1, np.int64)
    np.cumsum(high - low + 1, out=offsets[1:])
    dense = np.bincount(offsets[row] + bucket - low[row], minlength=int(offsets[-1])).astype(np.uint32)
    histograms = Histograms(
        order=np.arange(count.size),
        bucket_offset=low,
        bucket_counts=pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(dense)),
        count=count,
        sum_ns=np.add.reduceat(sample, starts),
        min_ns=ns_within_bucket(np.minimum.reduceat(sample, starts), low),
        max_ns=ns_within_bucket(np.maximum.reduceat(sample, starts), high),
        over_slo=np.add.reduceat((sample > slo_ns).astype(np.int64), starts),
    )
    return histograms, row, sample
