"""The one settings object: where the lake lives and how to reach Kafka.

Every entry point (CLI, loader, Dagster resources, benchmarks, tests) reads its configuration through
`Settings.from_env()`, so one environment variable changes the behaviour of all of them at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_PREFIX = "LEO_FLEET_"
# Files and directories this project creates (lake, reports, broker state, Dagster storage) are its user's alone.
PRIVATE_UMASK = 0o077


def restrict_new_files() -> None:
    """Set the process umask so everything created from here on is owner-only (0600 files, 0700 directories).

    Called by every entry point: `leo-fleet` (main), the lake connection (Dagster runs, benchmarks) and the
    Dagster code location; telemetry, reports and the instance's event log are not for other local users.
    """
    os.umask(PRIVATE_UMASK)


def default_data_dir() -> Path:
    """XDG data home, so the loader, Dagster and `leo-fleet sql` agree on the lake without any flags."""
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "leo-fleet"


@dataclass(frozen=True)
class KafkaSettings:
    """Connection settings for any Kafka cluster; the local broker needs none of the security fields."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    partitions: int = 6
    consumer_group: str = "leo-loader"

    def client_config(self) -> dict[str, object]:
        """Keyword arguments shared by kafka-python producers, consumers and admin clients."""
        config: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = self.sasl_password
        if self.ssl_cafile:
            config["ssl_cafile"] = self.ssl_cafile
        return config


@dataclass(frozen=True)
class Settings:
    """Where data lives: the DuckLake catalog and data path, reports, the local broker's state."""

    data_dir: Path = field(default_factory=default_data_dir)
    # DuckLake catalog: a SQLite file by default, or e.g. "postgres:dbname=lake host=db" at scale.
    lake_catalog: str | None = None
    # Parquet data path: under data_dir by default, or an object-store URL such as "s3://bucket/lake/".
    lake_data_path: str | None = None
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    # How far a row's time may run ahead of the loader's clock before the message is quarantined (clock skew).
    max_clock_skew_s: float = 900.0

    @property
    def catalog(self) -> str:
        return self.lake_catalog or f"sqlite:{self.data_dir / 'lake' / 'catalog.sqlite'}"

    @property
    def data_path(self) -> str:
        return self.lake_data_path or f"{self.data_dir / 'lake' / 'data'}/"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    def with_data_dir(self, data_dir: Path) -> Settings:
        return replace(self, data_dir=data_dir)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            return env.get(name) or None

        kafka = KafkaSettings(
            bootstrap_servers=get("KAFKA_BOOTSTRAP_SERVERS") or KafkaSettings.bootstrap_servers,
            security_protocol=get("KAFKA_SECURITY_PROTOCOL") or KafkaSettings.security_protocol,
            sasl_mechanism=get("KAFKA_SASL_MECHANISM"),
            sasl_username=get("KAFKA_SASL_USERNAME"),
            sasl_password=get("KAFKA_SASL_PASSWORD"),
            ssl_cafile=get("KAFKA_SSL_CAFILE"),
            partitions=int(get(ENV_PREFIX + "PARTITIONS") or KafkaSettings.partitions),
            consumer_group=get(ENV_PREFIX + "CONSUMER_GROUP") or KafkaSettings.consumer_group,
        )
        data_dir = get(ENV_PREFIX + "DATA_DIR")
        return cls(
            data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(),
            lake_catalog=get(ENV_PREFIX + "LAKE_CATALOG"),
            lake_data_path=get(ENV_PREFIX + "LAKE_DATA_PATH"),
            kafka=kafka,
            max_clock_skew_s=float(get(ENV_PREFIX + "MAX_CLOCK_SKEW_S") or cls.max_clock_skew_s),
        )
