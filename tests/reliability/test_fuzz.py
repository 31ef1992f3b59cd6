"""Fuzzed input through the real decode → quarantine → lake-write path: nothing lost, nothing doubled, no crash.

Each hypothesis example is one batch of Kafka-like records on a partition of its own, decoded exactly as the loader
decodes them (`loader._Pending`) and committed by the real lake writer into a DuckLake on disk. Every record must
then be accounted for exactly once: its rows stored under its offset, or the record in `raw.quarantine` with its
raw bytes and a reason. Targeted mutations must get their documented reason code (docs/reliability.md).

Example counts: `FUZZ_EXAMPLES` per test in CI (derandomized, so a run is reproducible); set
LEO_FLEET_FUZZ_EXAMPLES for a longer hunt (`LEO_FLEET_FUZZ_EXAMPLES=2000 pytest tests/reliability/test_fuzz.py`).
"""

from __future__ import annotations

import itertools
import math
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from ingest import contract, lake
from ingest.kafka import codec
from ingest.kafka.topics import reset_topics
from ingest.lake.loader import _Pending
from ingest.lake.raw_tables import QUARANTINE_TABLE, RAW, ensure_tables
from ingest.lake.writer import LakeWriter
from ingest.settings import KafkaSettings, Settings
from tests.ingest.kafka.helpers import as_stored, run_loader
from tests.ingest.kafka.jsonl import to_jsonl

FUZZ_EXAMPLES = int(os.environ.get("LEO_FLEET_FUZZ_EXAMPLES", "15"))
# Through the broker each example costs a topic reset and a consumer-group join (~5 s).
E2E_EXAMPLES = max(2, FUZZ_EXAMPLES // 10)
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize="LEO_FLEET_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Row times of generated telemetry: the last 30 days before the test started (the loader's clock is the real one).
NOW = datetime.now(UTC)
SKEW = timedelta(seconds=Settings.max_clock_skew_s)
RECENT = (NOW - timedelta(days=30), NOW - timedelta(minutes=1))
TOPICS = tuple(contract.TELEMETRY_SCHEMAS)
NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_:.", min_size=1, max_size=12)


# ---------------------------------------------------------------------------------------------------------
# Valid contract rows, generated from the schemas themselves.
# ---------------------------------------------------------------------------------------------------------


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _values(field: pa.Field) -> st.SearchStrategy:
    kind = field.type
    if field.name in codec.ALLOWED_VALUES:
        return st.sampled_from(codec.ALLOWED_VALUES[field.name])
    if pa.types.is_timestamp(kind):
        return st.integers(_ns(RECENT[0]), _ns(RECENT[1]))
    if pa.types.is_dictionary(kind):
        return st.sampled_from(codec.ENUM_COLUMNS[field.name]) if field.name in codec.ENUM_COLUMNS else NAMES
    if pa.types.is_string(kind):
        return st.text(min_size=1, max_size=20)
    if pa.types.is_fixed_size_binary(kind):
        return st.binary(min_size=kind.byte_width, max_size=kind.byte_width)
    if pa.types.is_boolean(kind):
        return st.booleans()
    if pa.types.is_floating(kind):
        return st.floats(0, 2.0**40, width=kind.bit_width)  # about 1e12, exact in float32 too
    if pa.types.is_integer(kind):
        bits = kind.bit_width
        return (
            st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if pa.types.is_signed_integer(kind)
            else (st.integers(0, 2**bits - 1))
        )
    if pa.types.is_list(kind):
        item = pa.field("item", kind.value_type)
        return st.lists(_values(item) if not pa.types.is_dictionary(kind.value_type) else NAMES, max_size=6)
    raise AssertionError(f"no strategy for {field}")


@st.composite
def contract_tables(draw: st.DrawFn, topic: str, max_rows: int = 6) -> pa.Table:
    schema = contract.TELEMETRY_SCHEMAS[topic]
    rows = draw(st.integers(1, max_rows))
    columns = []
    for field in schema:
        value = _values(field)
        values = draw(st.lists(st.none() | value if field.nullable else value, min_size=rows, max_size=rows))
        columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


# ---------------------------------------------------------------------------------------------------------
# Records: one Kafka message each, tagged with what the loader must do with it.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What `loader._Pending.add` reads from a kafka-python ConsumerRecord."""

    topic: str
    value: bytes | None
    headers: list[tuple[str, bytes]]
    rows: pa.Table | None = None  # the rows that must be stored; None: must be quarantined
    codes: frozenset[str] = frozenset()  # the acceptable reason codes; empty: any, or accepted as decoded
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


def _arrow(topic: str, table: pa.Table, **kw: object) -> Record:
    schema = contract.TELEMETRY_SCHEMAS[topic]
    return Record(topic, codec.encode_arrow(table), codec.message_headers(schema), **kw)


def _set(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), pa.field(name, column.type), column)


def _rejected(*codes: str) -> dict:
    return {"codes": frozenset(codes)}


@st.composite
def valid(draw: st.DrawFn, topic: str | None = None) -> Record:
    topic = topic or draw(st.sampled_from(TOPICS))
    table = draw(contract_tables(topic))
    if draw(st.booleans()):
        return _arrow(topic, table, rows=table)
    headers = codec.message_headers(contract.TELEMETRY_SCHEMAS[topic], contract.CONTENT_TYPE_JSONL)
    return Record(topic, to_jsonl(table), headers, rows=table)


@st.composite
def schema_drift(draw: st.DrawFn) -> Record:
    topic = draw(st.sampled_from(TOPICS))
    table = draw(contract_tables(topic))
    name = draw(st.sampled_from(table.column_names))
    drift = draw(st.sampled_from(["missing", "extra", "retyped", "duplicated"]))
    if drift == "missing":
        return _arrow(topic, table.drop_columns([name]), **_rejected("missing_columns"))
    if drift == "extra":
        extra = draw(NAMES.filter(lambda n: n not in table.column_names))
        return _arrow(topic, table.append_column(extra, pa.array(range(table.num_rows))), **_rejected("extra_columns"))
    if drift == "duplicated":
        return _arrow(topic, table.append_column(name, table.column(name)), **_rejected("duplicate_columns"))
    column = table.column(name)
    values = (column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column).to_pylist()
    if pa.types.is_string(column.type) or pa.types.is_dictionary(column.type):
        retyped = pa.array([None if v is None else len(v) for v in values], pa.int64())
    else:
        retyped = pa.array([None if v is None else str(v) for v in values], pa.string())
    return _arrow(topic, _set(table, name, retyped), **_rejected("retyped_column"))


@st.composite
def null_where_not_allowed(draw: st.DrawFn) -> Record:
    topic = draw(st.sampled_from(TOPICS))
    table = draw(contract_tables(topic))
    field = draw(st.sampled_from([f for f in table.schema if not f.nullable]))
    row = draw(st.integers(0, table.num_rows - 1))
    column = _with_value(table, field.name, row, None).column(field.name).combine_chunks()
    if pa.types.is_dictionary(field.type) and draw(st.booleans()):
        # A null hidden in the dictionary rather than the validity bitmap.
        dictionary = pa.array([*column.dictionary.to_pylist(), None], pa.string())
        indices = pa.array([len(dictionary) - 1 if v is None else v for v in column.indices.to_pylist()], pa.int16())
        column = pa.DictionaryArray.from_arrays(indices, dictionary)
    codes = ("null_in_required", "unknown_enum_value") if field.name in codec.ENUM_COLUMNS else ("null_in_required",)
    return _arrow(topic, _set(table, field.name, column), **_rejected(*codes))


BAD_SPEEDS = st.floats(width=32).filter(lambda v: v not in contract.PCIE_SPEEDS_GTS and v != 0)
BAD_WIDTHS = st.integers(0, 255).filter(lambda v: v not in contract.PCIE_WIDTHS and v != 0)


@st.composite
def out_of_range(draw: st.DrawFn) -> Record:
    """Negative latency, link speeds and widths outside PCIe, row times far in the future or before 2000."""
    kind = draw(st.sampled_from(["speed", "width", "negative_latency", "future", "ancient"]))
    topic = {"speed": contract.TOPIC_LINK, "width": contract.TOPIC_LINK, "negative_latency": contract.TOPIC_LATENCY}
    topic = topic.get(kind) or draw(st.sampled_from(tuple(contract.TIME_COLUMNS)))
    table = draw(contract_tables(topic))
    row = draw(st.integers(0, table.num_rows - 1))
    if kind in ("speed", "width"):
        name = draw(st.sampled_from(["cur_speed_gts", "max_speed_gts"] if kind == "speed" else ["cur_width"]))
        bad = draw(BAD_SPEEDS if kind == "speed" else BAD_WIDTHS)
        code = "out_of_range"
    elif kind == "negative_latency":
        name, bad, code = (
            "sum_ns",
            draw(st.floats(max_value=-1e-9) | st.just(math.nan) | st.just(math.inf)),
            ("out_of_range"),
        )
    else:
        name = contract.TIME_COLUMNS[topic]
        if kind == "future":
            bad = draw(st.integers(_ns(NOW + SKEW + timedelta(days=1)), 2**63 - 1))
            code = "future_timestamp"
        else:
            bad = draw(st.integers(-(2**63) + 1, _ns(codec.EARLIEST_TIMESTAMP) - 1))
            code = "out_of_range"
    return _arrow(topic, _with_value(table, name, row, bad), **_rejected(code))


def _with_value(table: pa.Table, name: str, row: int, value: object) -> pa.Table:
    """`table` with one cell replaced; timestamps are given as integer nanoseconds."""
    kind = table.schema.field(name).type
    plain = pa.int64() if pa.types.is_timestamp(kind) else kind
    values = table.column(name).cast(plain).to_pylist()
    values[row] = value
    return _set(table, name, pa.array(values, plain).cast(kind))


@st.composite
def damaged_ipc(draw: st.DrawFn) -> Record:
    """A good message truncated, or with bytes overwritten: quarantined, or (if still valid) stored once."""
    topic = draw(st.sampled_from(TOPICS))
    good = _arrow(topic, draw(contract_tables(topic)))
    value = good.value
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(value) - 1))
        return Record(
            topic, value[:cut], good.headers, **_rejected("truncated_ipc", "undecodable_ipc", "empty_message")
        )
    damaged = bytearray(value)
    for _ in range(draw(st.integers(1, 8))):
        damaged[draw(st.integers(0, len(value) - 1))] = draw(st.integers(0, 255))
    return Record(topic, bytes(damaged), good.headers)


@st.composite
def garbage(draw: st.DrawFn) -> Record:
    """Random bytes, random headers, random JSON-ish text: quarantined (or, if it parses, stored once)."""
    topic = draw(st.sampled_from(TOPICS))
    schema = contract.TELEMETRY_SCHEMAS[topic]
    content_type = draw(st.sampled_from([contract.CONTENT_TYPE_ARROW, contract.CONTENT_TYPE_JSONL]))
    headers = draw(
        st.just(codec.message_headers(schema, content_type))
        | st.lists(st.tuples(st.sampled_from([contract.HEADER_SCHEMA, contract.HEADER_CONTENT_TYPE, "x"]), st.binary()))
    )
    value = draw(
        st.binary(max_size=4096)
        | st.just(codec.IPC_CONTINUATION).flatmap(
            lambda c: st.binary(max_size=512).map(lambda b: c + b + codec.IPC_END_OF_STREAM)
        )
        | st.text(alphabet='{}[]":,0123456789.eE-+ntruflsa\n ' + "".join(schema.names[:3])).map(str.encode)
        | st.none()
    )
    return Record(topic, value, headers)


# ---------------------------------------------------------------------------------------------------------
# The harness: one lake for the module, one partition per example.
# ---------------------------------------------------------------------------------------------------------


class Lake:
    """A DuckLake on disk with the loader's lake-writer thread; `load` runs records through the loader's path."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings().with_data_dir(data_dir)
        self.con = lake.connect(self.settings)
        ensure_tables(self.con)
        self.reader = lake.lake_cursor(self.con)
        self.reader.execute("SET TimeZone = 'UTC'")
        self.writer = LakeWriter(self.con)
        self._partitions = itertools.count()
        # Per test: examples, messages, rows stored, messages quarantined, redelivered messages skipped.
        self.tally: dict[str, Counter] = defaultdict(Counter)

    def load(self, records: list[Record]) -> tuple[int, list[Record]]:
        """Decode and commit as one batch on a fresh partition; returns the partition and the placed records."""
        partition = next(self._partitions)
        placed = [
            Record(**{**r.__dict__, "partition": partition, "offset": offset}) for offset, r in enumerate(records)
        ]
        self.commit(placed)
        self._count(examples=1, messages=len(placed))
        return partition, placed

    def commit(self, records: list[Record]) -> None:
        pending = _Pending()
        for record in records:
            pending.add(record, now=0.0)
        self.writer.submit(pending.batch)
        for result in self.writer.results(wait=True):
            self._count(rows=result.rows, quarantined=result.quarantined, skipped=result.skipped_messages)

    def _count(self, **counts: int) -> None:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
        self.tally[test].update(counts)

    def query(self, sql: str, params: list) -> pa.Table:
        return self.reader.execute(sql, params).to_arrow_table()

    def close(self) -> None:
        self.writer.close()
        self.reader.close()
        self.con.close()


@pytest.fixture(scope="module")
def fuzz_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    lake_ = Lake(tmp_path_factory.mktemp("fuzz") / "data")
    yield lake_
    lake_.close()
    for test, counts in lake_.tally.items():  # the figures in docs/reliability.md (pytest -s)
        print(f"\n{test}: {dict(counts)}")


Query = Callable[[str, list], pa.Table]


def stored_by_offset(query: Query, topic: str, partition: int) -> dict[int, pa.Table]:
    table = contract.TABLE_NAMES[topic]
    columns = ", ".join(f'"{n}"' for n in contract.TELEMETRY_SCHEMAS[topic].names)
    rows = query(
        f"SELECT kafka_offset, {columns} FROM {RAW}.{table} WHERE kafka_topic = ? AND kafka_partition = ?",
        [topic, partition],
    )
    offsets = rows.column("kafka_offset")
    return {
        offset: rows.filter(pc.equal(offsets, offset)).drop_columns(["kafka_offset"])
        for offset in set(offsets.to_pylist())
    }


def assert_accounted_for(query: Query, partition: int, records: list[Record]) -> None:
    """Every record exactly once: its rows stored under its (topic, offset), or the record quarantined with its
    bytes and a reason; and the partition's watermark past the last record of each topic."""
    quarantined = query(
        f"SELECT kafka_topic, kafka_offset, reason_code, reason, raw_bytes FROM {RAW}.{QUARANTINE_TABLE} "
        "WHERE kafka_partition = ?",
        [partition],
    ).to_pylist()
    by_position = {(q["kafka_topic"], q["kafka_offset"]): q for q in quarantined}
    assert len(by_position) == len(quarantined), "a record was quarantined twice"
    topics = {r.topic for r in records}
    stored = {topic: stored_by_offset(query, topic, partition) for topic in topics}
    for record in records:
        rows = stored[record.topic].get(record.offset)
        q = by_position.get((record.topic, record.offset))
        assert (rows is None) != (q is None), f"{record.topic}@{record.offset}: stored={rows is not None} q={q}"
        if q is not None:
            assert record.rows is None, f"a valid record was quarantined: {q['reason']}"
            assert q["raw_bytes"] == record.value
            assert q["reason"].startswith(f"{q['reason_code']}: ")
            assert not record.codes or q["reason_code"] in record.codes, (q["reason"], record.codes)
        else:
            assert not record.codes, f"accepted a record that must be quarantined as {set(record.codes)}"
            decoded = codec.decode(record.topic, record.value, record.headers)  # only damaged bytes reach here
            assert rows.num_rows == decoded.num_rows
            if record.rows is not None:
                assert _multiset(rows) == _multiset(as_stored(record.rows)), "stored rows differ from those sent"
    marks = query(
        f"SELECT kafka_topic, max(last_offset) FROM {RAW}.ingest_offsets WHERE kafka_partition = ? GROUP BY ALL",
        [partition],
    ).to_pylist()
    last = {topic: max(r.offset for r in records if r.topic == topic) for topic in topics}
    assert {m["kafka_topic"]: m["max(last_offset)"] for m in marks} == last


def _multiset(table: pa.Table) -> list[str]:
    """Rows in a comparable form, order ignored (a scan returns a message's rows in no particular order)."""
    return sorted(repr(row) for row in table.to_pylist())


def _batch(record: st.SearchStrategy[Record]) -> st.SearchStrategy[list[Record]]:
    """Bad records mixed with good ones, in any order."""
    return st.lists(record | valid(), min_size=1, max_size=6)


# ---------------------------------------------------------------------------------------------------------
# The tests.
# ---------------------------------------------------------------------------------------------------------


BAD_INPUT = {
    "random_bytes_and_headers": garbage(),
    "truncated_or_corrupted_ipc": damaged_ipc(),
    "schema_drift": schema_drift(),
    "nulls_where_not_allowed": null_where_not_allowed(),
    "out_of_range_values": out_of_range(),
}


@pytest.mark.parametrize("kind", list(BAD_INPUT))
@FUZZ
@given(data=st.data())
def test_bad_input_is_quarantined_with_its_reason_and_nothing_is_lost(fuzz_lake, kind, data):
    records = data.draw(_batch(BAD_INPUT[kind]), label="records")
    partition, placed = fuzz_lake.load(records)
    assert_accounted_for(fuzz_lake.query, partition, placed)


@FUZZ
@given(
    topic=st.sampled_from(tuple(contract.TIME_COLUMNS)),
    tables=st.data(),
    skew=st.floats(0, SKEW.total_seconds() - 60),
)
def test_out_of_order_and_skewed_rows_within_tolerance_are_stored(fuzz_lake, topic, tables, skew):
    """Rows arrive newest first, across messages in any order, some ahead of the clock by less than the tolerance."""
    name = contract.TIME_COLUMNS[topic]
    records = []
    for table in tables.draw(st.lists(contract_tables(topic), min_size=2, max_size=5)):
        table = _with_value(table.sort_by([(name, "descending")]), name, 0, _ns(NOW) + int(skew * 1e9))
        records.append(_arrow(topic, table, rows=table))
    partition, placed = fuzz_lake.load(records[::-1])
    assert_accounted_for(fuzz_lake.query, partition, placed)


@FUZZ
@given(records=st.lists(valid(), min_size=1, max_size=4), repeats=st.integers(2, 3))
def test_redelivered_records_are_stored_once_and_resent_ones_once_per_offset(fuzz_lake, records, repeats):
    """Redelivery of the same offsets (a loader restart or rebalance) adds nothing; the same payload sent again by a
    producer is a new record at a new offset and is stored under that offset (the documented rule)."""
    resent = records * repeats
    partition, placed = fuzz_lake.load(resent)
    for _ in range(repeats):
        fuzz_lake.commit(placed)  # the same offsets again
    assert_accounted_for(fuzz_lake.query, partition, placed)


@settings(FUZZ, max_examples=5)
@given(table=contract_tables(contract.TOPIC_LINK, max_rows=1))
def test_the_skew_tolerance_comes_from_the_environment(table):
    tolerance = Settings.from_env({"LEO_FLEET_MAX_CLOCK_SKEW_S": "30"}).max_clock_skew_s
    assert tolerance == 30.0
    assert Settings.from_env({}).max_clock_skew_s == Settings.max_clock_skew_s
    ahead = datetime.now(UTC) + timedelta(seconds=120)  # the loader compares with the wall clock
    message = _arrow(contract.TOPIC_LINK, _with_value(table, "ts", 0, _ns(ahead)))
    default, strict = _Pending(), _Pending(max_skew_s=tolerance)  # what the loader builds from its settings
    default.add(message, now=0.0)
    strict.add(message, now=0.0)
    assert default.rows == 1 and not default.batch.quarantined  # inside the default tolerance
    assert [q.code for q in strict.batch.quarantined] == ["future_timestamp"]


KINDS = (*BAD_INPUT.values(), valid())
# At least two records of every kind, interleaved in any order.
MIXED = st.tuples(*(st.lists(kind, min_size=2, max_size=4) for kind in KINDS)).flatmap(
    lambda groups: st.permutations([record for group in groups for record in group])
)


@pytest.mark.kafka
@settings(FUZZ, max_examples=E2E_EXAMPLES)
@given(records=MIXED)
def test_fuzzed_messages_through_the_real_broker_and_loader(kafka_broker, tmp_path_factory, records):
    """End to end: every kind of record above, sent to the local broker, loaded by the real loader."""
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, consumer_group=f"fuzz-{uuid.uuid4().hex[:8]}")
    settings_ = Settings(kafka=kafka).with_data_dir(tmp_path_factory.mktemp("fuzz-e2e") / "data")
    reset_topics(settings_)
    producer = KafkaProducer(**kafka.client_config(), max_request_size=2 * 1024 * 1024)
    try:
        futures = [producer.send(r.topic, key=b"fuzz", value=r.value, headers=r.headers, partition=0) for r in records]
        placed = [
            Record(**{**r.__dict__, "offset": f.get(timeout=30).offset}) for r, f in zip(records, futures, strict=True)
        ]
    finally:
        producer.close()

    status = run_loader(settings_)

    con = lake.connect(settings_, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        assert_accounted_for(lambda sql, params: con.execute(sql, params).to_arrow_table(), 0, placed)
    finally:
        con.close()
    assert status["messages_total"] == len(placed)
    assert status["quarantined_total"] == sum(_rejected_now(r) for r in placed)
    print(f"\nthrough the broker: {len(placed)} messages, {status['rows_total']} rows, {status['quarantined_total']} q")


def _rejected_now(record: Record) -> bool:
    try:
        codec.decode(record.topic, record.value, record.headers)
    except codec.Rejected:
        return True
    return False
