from datetime import timedelta

from pipelines.lib.partitions import MIN_READ_CHUNK, READ_CHUNK, READ_CHUNK_CONTROLLERS, read_chunk
from pipelines.lib.slos import STEP_S


def test_a_larger_fleet_reads_raw_latency_in_proportionally_shorter_chunks_of_whole_sli_steps():
    """About as many rows per read whatever the fleet, so memory stays flat as it grows (issue 20), and never a
    split SLI step: the SLO series are computed a chunk at a time."""
    assert read_chunk(0) == read_chunk(READ_CHUNK_CONTROLLERS) == READ_CHUNK == timedelta(hours=4)
    assert read_chunk(2 * READ_CHUNK_CONTROLLERS) == timedelta(hours=2)
    assert read_chunk(10 * READ_CHUNK_CONTROLLERS) == timedelta(minutes=20)  # 24 minutes, in whole steps
    assert read_chunk(10**9) == MIN_READ_CHUNK
    assert MIN_READ_CHUNK % timedelta(seconds=STEP_S) == timedelta(0)
    for controllers in range(1, 20_000, 137):
        chunk = read_chunk(controllers)
        assert chunk % MIN_READ_CHUNK == timedelta(0)
        assert chunk * controllers <= READ_CHUNK * READ_CHUNK_CONTROLLERS or chunk == MIN_READ_CHUNK
