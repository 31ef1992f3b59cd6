"""`leo-fleet simulate --to-kafka [--speed N]`: the simulate command's Kafka output (flags and run function)."""

from __future__ import annotations

import argparse
import sys

from ingest.settings import Settings
from pipelines.cli.errors import CliError, number
from pipelines.cli.kafka_errors import kafka_error, require_reachable


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to-kafka",
        action="store_true",
        help="publish to the telemetry topics (KAFKA_BOOTSTRAP_SERVERS) instead of writing Parquet; "
        "ground truth goes straight to the lake table raw.truth_faults",
    )
    parser.add_argument(
        "--speed",
        type=number(0, 1e6),
        help="with --to-kafka: emit at wall-clock pace times SPEED (60 = one simulated hour per minute); "
        "default: as fast as possible",
    )


def run_to_kafka(args: argparse.Namespace, config) -> int:
    from kafka.errors import KafkaError
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ingest.kafka.delivery_faults import DeliveryFaults
    from ingest.kafka.producer import DeliveryError
    from ingest.kafka.publish import delivery_plan, publish_simulation
    from ingest.sim.simulator import Simulation

    if args.out is not None:
        raise CliError("--to-kafka publishes instead of writing Parquet: give either --out or --to-kafka")
    if config.raw_samples:
        raise CliError("--raw-samples is a Parquet-only debug stream: use it with --out, not --to-kafka")
    settings = Settings.from_env()
    require_reachable(settings)
    simulation = Simulation(config)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    )
    try:
        with progress:
            task = progress.add_task("publishing", total=simulation.n_chunks)
            summary = publish_simulation(
                settings,
                simulation,
                speed=args.speed,
                on_chunk=lambda chunk: progress.update(
                    task, advance=1, description=f"published to {chunk.window_end:%Y-%m-%d %H:%M}"
                ),
                # The same profile as the simulation's telemetry confounders: batches sent late or twice.
                delivery=delivery_plan(simulation, DeliveryFaults.profile(config.confounders.profile)),
            )
    except DeliveryError as exc:
        raise CliError(str(exc)) from None
    except KafkaError as exc:
        raise kafka_error(settings, exc) from None
    print(
        f"published {summary.rows:,} rows in {summary.messages:,} messages ({summary.bytes / 1e6:.1f} MB) "
        f"to {settings.kafka.bootstrap_servers} in {summary.seconds:.1f} s; "
        f"{summary.truth_rows:,} truth rows to the lake at {settings.data_dir}"
    )
    return 0
