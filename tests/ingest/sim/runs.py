"""A simulated run held in memory and registered in DuckDB under its table names, for SQL assertions."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ingest.sim.config import SimConfig
from ingest.sim.simulator import SimChunk, Simulation


def simulated(config: SimConfig) -> tuple[Simulation, list[SimChunk], duckdb.DuckDBPyConnection]:
    """The run's chunks, and a connection where errors, link, latency, truth, jobs, inventory and maintenance are
    views."""
    sim = Simulation(config)
    chunks = list(sim.chunks())
    con = duckdb.connect()
    for name in ("errors", "link", "latency", "truth", "jobs"):
        con.register(name, pa.concat_tables(getattr(c, name) for c in chunks))
    con.register("inventory", sim.inventory)
    con.register("maintenance", sim.maintenance)
    return sim, chunks, con
