from datetime import timedelta

from pipelines.lib.partitions import MIN_READ_CHUNK, READ_CHUNK, READ_CHUNK_CONTROLLERS, read_chunk


def test_a_larger_fleet_reads_raw_latency_in_shorter_chunks_of_whole_hours():
    """About as many rows per read whatever the fleet, so memory stays flat as it grows (issue 20), and never a
    split hour: the latency rollups are hourly."""
    assert read_chunk(0) == read_chunk(READ_CHUNK_CONTROLLERS) == READ_CHUNK == timedelta(hours=4)
    assert read_chunk(2 * READ_CHUNK_CONTROLLERS) == timedelta(hours=2)
    assert read_chunk(3 * READ_CHUNK_CONTROLLERS) == read_chunk(10**9) == MIN_READ_CHUNK == timedelta(hours=1)
    for controllers in range(0, 20_000, 137):
        assert read_chunk(controllers) % timedelta(hours=1) == timedelta(0)
