"""Reading a long window piecewise with read-ahead gives exactly what reading it piece by piece gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from ingest import lake
from ingest.settings import Settings
from pipelines.lib.marts import read_ahead, read_window
from pipelines.lib.partitions import Window

START = datetime(2026, 1, 5, tzinfo=UTC)


def test_read_ahead_yields_every_chunk_in_order_while_the_caller_queries_the_same_lake(tmp_path):
    con = lake.connect(Settings().with_data_dir(tmp_path))
    try:
        con.execute("CREATE TABLE readings (ts TIMESTAMPTZ, value BIGINT)")
        con.execute(
            "INSERT INTO readings SELECT $start::TIMESTAMPTZ + i * INTERVAL 7 MINUTE, i FROM range(1000) t(i)",
            {"start": START},
        )
        window = Window(START, START + timedelta(hours=100))
        hours = list(window.chunks(timedelta(hours=9)))

        def read(cursor, hour: Window) -> pa.Table:
            return read_window(cursor, "readings", "ts", hour)

        ahead = []
        for table in read_ahead(con, hours, read):
            ahead.append(table)
            # the caller's own connection stays usable while the next chunk is being read
            assert con.execute("SELECT count(*) FROM readings").fetchone() == (1000,)
        piecewise = [read(con, hour) for hour in hours]
    finally:
        con.close()

    assert [t.num_rows for t in ahead] == [t.num_rows for t in piecewise]
    assert all(a.equals(p) for a, p in zip(ahead, piecewise, strict=True))
    assert sum(t.num_rows for t in ahead) == 100 * 60 // 7 + 1  # every reading inside the 100 h, none twice
