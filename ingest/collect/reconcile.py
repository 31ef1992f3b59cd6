"""Sending a spooled poll again without duplicates: take out of it what Kafka already holds from the last attempt.

Before a spooled poll is first sent, the agent records the end offset of every partition of its topics. If that
attempt did not finish (the process was killed mid-flush, or the broker went away), some of its messages may be in
Kafka already. Before the next attempt, the messages from the recorded ends on are read back and every row and
reject found there is taken out of the poll: rows are compared whole (a re-sent row is the same row, its ts
included, because the spool keeps the poll as it was first built), one for one, so two identical rows of one poll
are matched separately. A partition whose end is now below the recorded one was recreated (a broker that lost its
topics) and is read from 0. The local broker may answer an end offset short (docs/reliability.md), so reading
goes on until a fetch returns nothing more, not just up to the answered end.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition

from ingest.collect.spool import Publication
from ingest.kafka import codec

READ_BACK_TIMEOUT_S = 60.0
IDLE_POLLS = 2  # empty fetches past the answered end before the read-back stops


def topics_of(publication: Publication) -> list[str]:
    with_rows = {topic for topic, table in publication.tables if table.num_rows}
    return sorted(with_rows | {topic for topic, _ in publication.rejects})


def end_offsets(consumer: KafkaConsumer, topics: list[str]) -> dict[str, dict[str, int]]:
    """Every partition's end offset, as JSON-ready {topic: {partition: offset}}."""
    partitions = [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic))]
    ends = consumer.end_offsets(partitions) if partitions else {}
    recorded: dict[str, dict[str, int]] = {}
    for partition, offset in ends.items():
        recorded.setdefault(partition.topic, {})[str(partition.partition)] = offset
    return recorded


def remove_delivered(consumer: KafkaConsumer, publication: Publication, ends: dict[str, dict[str, int]]) -> Publication:
    """`publication` without the rows and rejects Kafka holds after `ends` (the last attempt's recorded ends)."""
    rows, rejects = _read_back(consumer, ends)
    tables = [(topic, _without(table, rows)) for topic, table in publication.tables]
    kept = []
    for topic, reject in publication.rejects:
        key = (topic, reject.raw[: codec.MAX_PRODUCED_BYTES], reject.reason)
        if rejects[key]:
            rejects[key] -= 1
        else:
            kept.append((topic, reject))
    return Publication(tables=tables, rejects=kept, states=publication.states)


def _read_back(consumer: KafkaConsumer, ends: dict[str, dict[str, int]]) -> tuple[Counter, Counter]:
    partitions = [TopicPartition(topic, int(p)) for topic, parts in ends.items() for p in parts]
    rows: Counter = Counter()
    rejects: Counter = Counter()
    if not partitions:
        return rows, rejects
    consumer.assign(partitions)
    now = consumer.end_offsets(partitions)
    for partition in partitions:
        start = ends[partition.topic][str(partition.partition)]
        consumer.seek(partition, start if start <= now[partition] else 0)
    deadline, idle = time.monotonic() + READ_BACK_TIMEOUT_S, 0
    while idle < IDLE_POLLS and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        reached = all(consumer.position(p) >= now[p] for p in partitions)
        idle = idle + 1 if not batch and reached else 0
        for partition, records in batch.items():
            for record in records:
                _count(partition.topic, record, rows, rejects)
    return rows, rejects


def _count(topic: str, record, rows: Counter, rejects: Counter) -> None:
    try:
        table = codec.decode(topic, record.value, [(key, value or b"") for key, value in record.headers])
    except codec.Rejected as problem:
        if problem.code == "producer_rejected":
            rejects[(topic, record.value, problem.detail)] += 1
        return
    rows.update(_row_keys(table))


def _without(table: pa.Table, seen: Counter) -> pa.Table:
    keep = []
    for key in _row_keys(table):
        keep.append(not seen[key])
        if seen[key]:
            seen[key] -= 1
    return table.filter(pa.array(keep, pa.bool_())) if table.num_rows else table


def _row_keys(table: pa.Table) -> list[str]:
    """Each row as comparable text: timestamps as integers, dictionaries as strings, bytes as hex."""
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64())
        elif pa.types.is_dictionary(field.type):
            column = column.cast(pa.string())
        elif pa.types.is_list(field.type) and pa.types.is_dictionary(field.type.value_type):
            column = column.cast(pa.list_(pa.string()))
        columns.append(column)
    plain = pa.table(columns, names=table.schema.names)
    return [json.dumps(list(row.values()), default=bytes.hex) for row in plain.to_pylist()]
