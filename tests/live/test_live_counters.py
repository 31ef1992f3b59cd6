"""A reset seen only in falling link counters is recorded live only once the detector could confirm it: rows a
host clock step put out of order make a counter fall for a few snapshots and climb back, which the hourly
detector (reading the rows after) does not call a reset; counters zeroed for good are one. Two of the sample's
fault-free controllers, their link totals rewritten into those two shapes, committed a snapshot at a time with a
live round after each."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.lake import lake_cursor
from ingest.lake.raw_tables import Batch, Rows, commit_batch, ensure_tables
from models.features import Detections
from models.resets import ResetConfig
from models.series import Controllers
from pipelines.lib.resources import LakeResource
from pipelines.live.detect import LiveDetector
from pipelines.live.tables import ensure_live_tables
from tests.live.test_live import _slice
from tests.sample_lake import SAMPLE_DIR, SAMPLE_SPAN

SPAN = timedelta(minutes=40)
FALL_AT = 20  # the snapshot (minute) at which both controllers' totals fall
STEP = timedelta(minutes=1)


def _controllers(link: pa.Table) -> tuple[str, str]:
    """Two controllers without any injected fault, each with one link port."""
    truth = set(
        pq.read_table(SAMPLE_DIR / "truth_faults.parquet", columns=["controller_id"])["controller_id"].to_pylist()
    )
    ports = link.group_by("controller_id").aggregate([("port", "count_distinct")]).to_pylist()
    clean = sorted(
        r["controller_id"] for r in ports if r["port_count_distinct"] == 1 and r["controller_id"] not in truth
    )
    return clean[0], clean[1]


def _rewritten(link: pa.Table, controller: str, totals) -> pa.Table:
    rows = link.filter(pc.equal(link["controller_id"], controller)).sort_by("ts")
    rows = rows.filter(pc.equal(rows["event"].cast(pa.string()), "snapshot")).slice(0, len(totals))
    column = rows.schema.get_field_index("aer_cor_total")
    return rows.set_column(column, rows.schema.field(column), pa.array(totals, rows.schema.field(column).type))


def test_a_counter_fall_is_recorded_once_confirmed(tmp_path: Path) -> None:
    link = _slice(pq.read_table(SAMPLE_DIR / "link.parquet"), SAMPLE_SPAN.start, SAMPLE_SPAN.start + SPAN)
    errors = _slice(pq.read_table(SAMPLE_DIR / "errors.parquet"), SAMPLE_SPAN.start, SAMPLE_SPAN.start + SPAN)
    stepped, zeroed = _controllers(link)
    n = int(SPAN / STEP)
    rising = 1000 + 10 * np.arange(n)
    # A back step: the rows of minutes FALL_AT.. carry older totals for fewer rows than the detector confirms over.
    back = rising.copy()
    back[FALL_AT : FALL_AT + ResetConfig().counter_confirm_rows - 2] = rising[FALL_AT - 5]
    # Zeroed: from FALL_AT on the totals start again from 0 and stay below the old value.
    zero = np.where(np.arange(n) < FALL_AT, rising, 10 * (np.arange(n) - FALL_AT))
    link = pa.concat_tables([_rewritten(link, stepped, back), _rewritten(link, zeroed, zero)])
    errors = errors.filter(pc.is_in(errors["controller_id"], pa.array([stepped, zeroed])))

    lake = LakeResource(data_dir=str(tmp_path / "data"))
    with lake.connection() as con:
        ensure_tables(con)
        ensure_live_tables(con)
        inventory = pq.read_table(SAMPLE_DIR / "inventory.parquet")
        commit_batch(con, Batch(rows=[Rows("inventory", inventory)]))
        detector = LiveDetector(lake_cursor(con))
        start = SAMPLE_SPAN.start
        while start < SAMPLE_SPAN.start + SPAN:
            parts = [
                Rows("errors", _slice(errors, start, start + STEP)),
                Rows("link", _slice(link, start, start + STEP)),
            ]
            commit_batch(con, Batch(rows=parts))
            detector.round()
            start += STEP
        live = con.execute("SELECT subject, evidence FROM sre.live_incidents WHERE kind = 'reset'").fetchall()

    # The hourly detector over all the rows: the zeroed counters are a reset, the stepped ones are not.
    controllers = Controllers.of(inventory.column("controller_id"))
    hourly = Detections.from_tables(errors, link, controllers).resets
    assert hourly["controller_id"].to_pylist() == [zeroed]
    assert [subject for subject, _ in live] == [zeroed]
