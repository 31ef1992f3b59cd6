"""Regenerate sample_data/: a small seeded fleet run with its ground truth (`make sample-data`).

`python -m ingest.sim.sample_data DIR` rewrites the Parquet files, run.json and a README whose fault statistics are
measured from the files just written, so the README always describes the committed data. The directory is an
argument: a developer tool run from the checkout (the Makefile passes `sample_data`), it finds nothing by itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from ingest.sim.config import SimConfig
from ingest.sim.confounders import confounder_knobs
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation

SAMPLE_SEED = 20260105
# Confounders off: sample_data/ is the committed clean run whose exact counts tests and docs quote (97 resets,
# 47 drops); the confounded fleet is tested on runs of its own (tests/models/test_confounded_detectors.py).
SAMPLE_CONFIG = SimConfig(
    controllers=200, hours=6.0, interval_s=60, seed=SAMPLE_SEED, confounders=confounder_knobs("off")
)

_STATISTICS = {
    "Controller resets by kind (explicit / silent)": """
        SELECT json_extract_string(details, '$.reset_kind') || ': ' ||
               count(*) FILTER (WHERE NOT json_extract(details, '$.silent')::BOOLEAN) || ' / ' ||
               count(*) FILTER (WHERE json_extract(details, '$.silent')::BOOLEAN)
        FROM truth_faults WHERE kind = 'controller_reset'
        GROUP BY json_extract_string(details, '$.reset_kind') ORDER BY 1""",
    "Controller resets by cause": """
        SELECT json_extract_string(details, '$.cause') || ': ' || count(*)
        FROM truth_faults WHERE kind = 'controller_reset'
        GROUP BY json_extract_string(details, '$.cause') ORDER BY 1""",
    "Link drops (with precursor / sudden)": """
        SELECT count(*) FILTER (WHERE precursor_onset_ts IS NOT NULL) || ' / ' ||
               count(*) FILTER (WHERE precursor_onset_ts IS NULL)
        FROM truth_faults WHERE kind = 'link_drop'""",
    "UEs (with CE precursor / without)": """
        SELECT count(*) FILTER (WHERE precursor_onset_ts IS NOT NULL) || ' / ' ||
               count(*) FILTER (WHERE precursor_onset_ts IS NULL)
        FROM truth_faults WHERE kind = 'ue'""",
    "Truth rows by kind": "SELECT kind || ': ' || count(*) FROM truth_faults GROUP BY kind ORDER BY kind",
    "CE concentration (controllers with CEs; share of CEs from the top 20 %)": """
        WITH deltas AS (
          SELECT controller_id, CASE WHEN counter_epoch = lag(counter_epoch) OVER w
                   THEN cor_vol_err_cnt::BIGINT - lag(cor_vol_err_cnt) OVER w ELSE 0 END AS d
          FROM errors WHERE record_type = 'health_snapshot' WINDOW w AS (PARTITION BY controller_id ORDER BY ts)),
        totals AS (SELECT controller_id, sum(d) AS ces FROM deltas GROUP BY controller_id HAVING sum(d) > 0),
        ranked AS (SELECT ces, row_number() OVER (ORDER BY ces DESC) AS r, count(*) OVER () AS n FROM totals)
        SELECT n || ' controllers; '
               || round(100 * sum(ces) FILTER (WHERE r <= greatest(1, n // 5)) / sum(ces), 1) || ' %'
        FROM ranked GROUP BY n""",
}


def fault_statistics(run_dir: Path) -> dict[str, list[str]]:
    """Headline fault statistics of a run directory, measured from its Parquet files."""
    con = duckdb.connect()
    for name in ("truth_faults", "errors"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{run_dir / name}.parquet')")
    return {title: [row[0] for row in con.execute(sql).fetchall()] for title, sql in _STATISTICS.items()}


def readme(rows: dict[str, int], statistics: dict[str, list[str]]) -> str:
    counts = "\n".join(f"| `{name}.parquet` | {count:,} |" for name, count in rows.items())
    stats = "\n".join(f"- {title}: {'; '.join(values) or 'none'}" for title, values in statistics.items())
    config = SAMPLE_CONFIG
    return f"""# Sample data

A small seeded run of the Leo fleet simulator: {config.controllers} controllers x {config.hours:g} h at a
{config.interval_s} s interval, seed {config.seed}, fault acceleration {config.fault_acceleration:g}x (one simulated
hour ≈ {config.fault_acceleration / 24 / 7:.0f} weeks of field events). Telemetry follows `ingest/contract.py`;
`truth_faults.parquet` is the injected ground truth and never appears in the telemetry. `run.json` holds the full
configuration.

Regenerate (byte-identical) with:

```bash
make sample-data        # = .venv/bin/python -m ingest.sim.sample_data sample_data
```

| File | Rows |
|---|---|
{counts}

Fault statistics (measured from these files):

{stats}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the run directory to (re)write, e.g. sample_data")
    output = parser.parse_args(argv).output
    output.mkdir(exist_ok=True)
    summary = write_run(Simulation(SAMPLE_CONFIG), output, progress=sys.stderr.isatty())
    (output / "README.md").write_text(readme(summary.rows, fault_statistics(output)))
    print(summary.one_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
