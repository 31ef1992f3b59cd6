"""Reading a long window piecewise with read-ahead gives exactly what reading it piece by piece gives; a mart an
older version created takes the columns a newer one added."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from ingest import lake
from ingest.settings import Settings
from models.resets import RESETS_SCHEMA
from pipelines.lib.marts import MARTS, read_ahead, read_window, replace_window, window_rows
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


def test_a_mart_created_before_a_column_existed_takes_it_on_the_next_write(tmp_path):
    """A lake whose marts.resets predates `planned`: the next hour's write adds the column; the hour stored before
    reads NULL in it (not known then), the new hour its values."""
    old_schema = RESETS_SCHEMA.remove(RESETS_SCHEMA.get_field_index("planned"))
    hours = [Window(START + timedelta(hours=h), START + timedelta(hours=h + 1)) for h in range(2)]

    def resets(hour: Window) -> pa.Table:
        return pa.table(
            {
                "controller_id": ["0x1", "0x2"],
                "reset_ts": [hour.start + timedelta(minutes=10), hour.start + timedelta(minutes=40)],
                "detected_ts": [hour.start + timedelta(minutes=11), hour.start + timedelta(minutes=41)],
                "silent": [False, True],
                "reset_kind": ["fw_activate", None],
                "evidence": ["row", "uptime"],
                "planned": [True, False],
            }
        ).cast(RESETS_SCHEMA)

    con = lake.connect(Settings().with_data_dir(tmp_path))
    try:
        con.execute(f"CREATE SCHEMA {MARTS}")
        old = window_rows(resets(hours[0]).select(old_schema.names), "reset_ts", hours[0])
        con.register("old", old)
        con.execute(f"CREATE TABLE {MARTS}.resets AS SELECT * FROM old")
        con.unregister("old")

        replace_window(con, "resets", window_rows(resets(hours[1]), "reset_ts", hours[1]), "reset_ts", hours[1])
        stored = con.execute(f"SELECT reset_ts, planned FROM {MARTS}.resets ORDER BY reset_ts").fetchall()
    finally:
        con.close()

    assert [planned for _, planned in stored] == [None, None, True, False]
    assert [ts for ts, _ in stored[2:]] == resets(hours[1])["reset_ts"].to_pylist()
