from datetime import timedelta

from pipelines.lib.partitions import MIN_READ_CHUNK, READ_CHUNK, READ_CHUNK_CONTROLLERS, read_chunk


def test_a_larger_fleet_reads_raw_latency_in_proportionally_shorter_chunks_down_to_a_floor():
    """About as many rows per read whatever the fleet: memory stays flat as it grows (issue 20)."""
    assert read_chunk(0) == read_chunk(READ_CHUNK_CONTROLLERS) == READ_CHUNK
    assert read_chunk(10 * READ_CHUNK_CONTROLLERS) == READ_CHUNK / 10
    assert read_chunk(10 * READ_CHUNK_CONTROLLERS + 1) < READ_CHUNK / 10
    assert read_chunk(10**9) == MIN_READ_CHUNK > timedelta(0)
