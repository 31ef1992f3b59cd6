"""The one settings object: where the lake lives and how to reach Kafka.

Every entry point (CLI, loader, Dagster resources, benchmarks, tests) reads its configuration through
`Settings.from_env()`, so one environment variable changes the behaviour of all of them at once.
"""

from __future__ import annotations

import configparser
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

ENV_PREFIX = "LEO_FLEET_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# kafka-python's SASL mechanisms that need only a username and password, the credentials these settings carry
# (its GSSAPI, OAUTHBEARER and AWS_MSK_IAM need configuration objects an environment variable cannot hold).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# The catalogs ingest/lake/__init__.py knows how to attach (it loads the matching DuckDB extension).
CATALOG_KINDS = ("sqlite:", "postgres:")
MAX_PORT = 65_535
MAX_PARTITIONS = 1_000
# A row this far ahead of the loader's clock is a broken sender clock, not skew; also keeps `now + skew` in range.
MAX_CLOCK_SKEW_S = 7 * 86_400
EARLIEST_DAY = date(2000, 1, 1)
PARTITIONS_START_ENV = ENV_PREFIX + "PARTITIONS_START"
PARTITIONS_END_ENV = ENV_PREFIX + "PARTITIONS_END"
# The first day of the Dagster partitions when neither PARTITIONS_START_ENV nor the lake says otherwise (an empty
# lake): the simulator's default start.
DEFAULT_PARTITIONS_START = date(2026, 1, 5)
# A host name or IPv4 address, or an IPv6 literal in brackets ([::1]).
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")
# Files and directories this project creates (lake, reports, broker state, Dagster storage) are its user's alone.
PRIVATE_UMASK = 0o077


def restrict_new_files() -> None:
    """Set the process umask so everything created from here on is owner-only (0600 files, 0700 directories).

    Called by every entry point and by nothing else: `leo-fleet` (main), the Dagster code location's load (its
    code server and run workers) and the benchmarks' main; telemetry, reports and the instance's event log are
    not for other local users.
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


URL_STYLES = ("path", "vhost")
_REGION = re.compile(r"[A-Za-z0-9-]+")
# A credentials file in the AWS shared-credentials (INI) form; the section read is this profile.
CREDENTIALS_PROFILE = "default"


@dataclass(frozen=True)
class S3Settings:
    """How DuckDB reaches an object-store data path (LEO_FLEET_LAKE_DATA_PATH=s3://...): a DuckDB secret per
    connection (ingest/lake/). Unset fields keep DuckDB's defaults (AWS, vhost style, TLS). The secret key is never
    in repr, logs or metadata."""

    endpoint: str | None = None
    region: str | None = None
    url_style: str | None = None
    use_ssl: bool | None = None
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)

    def secret_options(self) -> tuple[str, list[object]]:
        """`CREATE SECRET (TYPE s3, ...)` options with `?` placeholders, and their values (credentials stay out of
        the SQL text)."""
        options, values = ["TYPE s3"], []
        for keyword, value in (
            ("KEY_ID", self.key_id),
            ("SECRET", self.secret),
            ("ENDPOINT", self.endpoint),
            ("REGION", self.region),
            ("URL_STYLE", self.url_style),
            ("USE_SSL", self.use_ssl),
        ):
            if value is not None:
                options.append(f"{keyword} ?")
                values.append(value)
        return ", ".join(options), values


@dataclass(frozen=True)
class Settings:
    """Where data lives: the DuckLake catalog and data path, reports, the local broker's state.

    The data directory's layout is owned here, one property per directory; every other module asks for it."""

    data_dir: Path = field(default_factory=default_data_dir)
    # DuckLake catalog: a SQLite file by default, or e.g. "postgres:dbname=lake host=db" at scale.
    lake_catalog: str | None = None
    # Parquet data path: under data_dir by default, or an object-store URL such as "s3://bucket/lake/".
    lake_data_path: str | None = None
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    # How far a row's time may run ahead of the loader's clock before the message is quarantined (clock skew).
    max_clock_skew_s: float = 900.0
    # First day of the Dagster partitions (pipelines/lib/partitions.py builds them from it); None: the first day of
    # data in the lake. Checked here with the rest, so a bad value is refused by every command, not only by Dagster.
    partitions_start: date | None = None
    # The end of the last hourly partition (a whole UTC hour), for a lake that receives no more data, as the
    # demo's; None: the last complete hour, so new hours get their partitions as time passes.
    partitions_end: datetime | None = None
    # The object store of an s3:// data path.
    s3: S3Settings = field(default_factory=S3Settings)
    # Where `leo-fleet ui` serves the reports over HTTP (loopback), the port the report assets' links name.
    reports_port: int = 3001

    @property
    def lake_dir(self) -> Path:
        """The local lake: its SQLite catalog and Parquet files unless the catalog or data path settings move them."""
        return self.data_dir / "lake"

    @property
    def catalog(self) -> str:
        return self.lake_catalog or f"sqlite:{self.lake_dir / 'catalog.sqlite'}"

    @property
    def data_path(self) -> str:
        return self.lake_data_path or f"{self.lake_dir / 'data'}/"

    @property
    def model_dir(self) -> Path:
        """Versioned model files (pipelines.lib.model_store): next to the lake they were trained on."""
        return self.data_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def dagster_home(self) -> Path:
        """The demo's Dagster instance (DAGSTER_HOME), so `dagster dev` afterwards shows its runs."""
        return self.data_dir / "dagster"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def scratch_dir(self) -> Path:
        """Temporary files that outgrow memory (the SQL session's spills): the user's own, never the working dir."""
        return self.data_dir / "tmp"

    def with_data_dir(self, data_dir: Path) -> Settings:
        return replace(self, data_dir=data_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; a value that cannot work raises SettingsError naming its variable.

        An empty variable counts as unset (its default applies), so `VAR= leo-fleet ...` clears a setting.
        """
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(name) or None

        kafka = KafkaSettings(
            bootstrap_servers=_servers(get("KAFKA_BOOTSTRAP_SERVERS") or KafkaSettings.bootstrap_servers),
            security_protocol=_security_protocol(get),
            sasl_mechanism=_sasl_mechanism(get),
            sasl_username=get("KAFKA_SASL_USERNAME"),
            sasl_password=get("KAFKA_SASL_PASSWORD"),
            ssl_cafile=get("KAFKA_SSL_CAFILE"),
            partitions=_number(get, ENV_PREFIX + "PARTITIONS", int, KafkaSettings.partitions, 1, MAX_PARTITIONS),
            consumer_group=get(ENV_PREFIX + "CONSUMER_GROUP") or KafkaSettings.consumer_group,
        )
        skew = _number(get, ENV_PREFIX + "MAX_CLOCK_SKEW_S", float, cls.max_clock_skew_s, 0, MAX_CLOCK_SKEW_S)
        return cls(
            data_dir=_data_dir(get(ENV_PREFIX + "DATA_DIR")),
            lake_catalog=_catalog(get(ENV_PREFIX + "LAKE_CATALOG")),
            lake_data_path=_quotable(ENV_PREFIX + "LAKE_DATA_PATH", get(ENV_PREFIX + "LAKE_DATA_PATH")),
            kafka=kafka,
            max_clock_skew_s=skew,
            partitions_start=_day(PARTITIONS_START_ENV, get(PARTITIONS_START_ENV)),
            partitions_end=_hour(PARTITIONS_END_ENV, get(PARTITIONS_END_ENV)),
            s3=_s3(get),
            reports_port=_number(get, ENV_PREFIX + "REPORTS_PORT", int, cls.reports_port, 1, MAX_PORT),
        )


class SettingsError(ValueError):
    """A setting that cannot work: the message names the environment variable and says what it accepts."""


def bootstrap_addresses(servers: str) -> list[tuple[str, int]]:
    """(host, port) of each comma-separated `host:port`: the one parser of KAFKA_BOOTSTRAP_SERVERS."""
    addresses = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not (_HOST.fullmatch(host) and port.isascii() and port.isdigit() and 1 <= int(port) <= MAX_PORT):
            raise SettingsError(
                f"KAFKA_BOOTSTRAP_SERVERS must be comma-separated host:port pairs with ports 1-{MAX_PORT}, "
                f"got {servers!r}"
            )
        addresses.append((host, int(port)))
    return addresses


def _servers(servers: str) -> str:
    return ",".join(f"{host}:{port}" for host, port in bootstrap_addresses(servers))


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _security_protocol(get: Callable[[str], str | None]) -> str:
    return _one_of("KAFKA_SECURITY_PROTOCOL", get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT", SECURITY_PROTOCOLS)


def _sasl_mechanism(get: Callable[[str], str | None]) -> str | None:
    """The mechanism, required (with a username and password) when the protocol authenticates with SASL."""
    mechanism = get("KAFKA_SASL_MECHANISM")
    if mechanism is not None:
        _one_of("KAFKA_SASL_MECHANISM", mechanism, SASL_MECHANISMS)
    if (get("KAFKA_SECURITY_PROTOCOL") or "").startswith("SASL_"):
        missing = [
            name for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD") if get(name) is None
        ]
        if missing:
            raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={get('KAFKA_SECURITY_PROTOCOL')} needs {', '.join(missing)}")
    return mechanism


def _number(get: Callable[[str], str | None], name: str, kind: type, default: float, low: float, high: float):
    """`kind(value)` within [low, high], or `default` when unset."""
    text = get(name)
    if text is None:
        return default
    try:
        value = kind(text) if text.isascii() else math.nan  # Python reads other scripts' digits too ('٣' is 3)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN fails too
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name} must be {what} from {low:g} to {high:g}, got {text!r}")
    return value


def _day(name: str, text: str | None) -> date | None:
    """A past day in YYYY-MM-DD form, from 2000 on (the earliest telemetry the loader accepts)."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None or not EARLIEST_DAY <= day <= datetime.now(UTC).date():
        raise SettingsError(f"{name} must be a day like 2026-01-05 from {EARLIEST_DAY} to today, got {text!r}")
    return day


def _hour(name: str, text: str | None) -> datetime | None:
    """A whole UTC hour in ISO form (2026-01-06T00:00Z; UTC unless it says otherwise), from 2000 on."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.date() < EARLIEST_DAY or moment != moment.replace(minute=0, second=0, microsecond=0):
        raise SettingsError(f"{name} must be a whole UTC hour like 2026-01-06T00:00Z from {EARLIEST_DAY}, got {text!r}")
    return moment


def _data_dir(text: str | None) -> Path:
    if text is None:
        return default_data_dir()
    name = ENV_PREFIX + "DATA_DIR"
    try:
        path = Path(text).expanduser().absolute()
        usable = path.is_dir() or not path.exists()
    except (OSError, RuntimeError) as exc:  # a name too long, ~nosuchuser
        raise SettingsError(f"{name}={text!r} is not a usable path: {exc}") from None
    if not usable:
        raise SettingsError(f"{name}={text!r} is not a directory")
    return path


def _quotable(name: str, value: str | None) -> str | None:
    """Catalog and data path go into a quoted SQL string (ATTACH ... DATA_PATH '...'): no quote may end it."""
    if value is not None and "'" in value:
        raise SettingsError(f"{name} must not contain a single quote, got {value!r}")
    return value


def _catalog(value: str | None) -> str | None:
    name = ENV_PREFIX + "LAKE_CATALOG"
    kind = next((kind for kind in CATALOG_KINDS if value and value.startswith(kind)), None)
    if value is not None and (kind is None or not value.removeprefix(kind).strip()):
        raise SettingsError(f"{name} must be sqlite:<path> or postgres:<conninfo>, got {value!r}")
    return _quotable(name, value)


def _s3(get: Callable[[str], str | None]) -> S3Settings:
    endpoint_name, region_name = ENV_PREFIX + "S3_ENDPOINT", ENV_PREFIX + "S3_REGION"
    endpoint = get(endpoint_name)
    if endpoint is not None:
        host, _, port = endpoint.rpartition(":")
        if not (_HOST.fullmatch(host) and port.isascii() and port.isdigit() and 1 <= int(port) <= MAX_PORT):
            raise SettingsError(f"{endpoint_name} must be host:port with a port 1-{MAX_PORT}, got {endpoint!r}")
    region = get(region_name)
    if region is not None and not _REGION.fullmatch(region):
        raise SettingsError(f"{region_name} must be a region name like us-east-1, got {region!r}")
    url_style = get(ENV_PREFIX + "S3_URL_STYLE")
    if url_style is not None:
        _one_of(ENV_PREFIX + "S3_URL_STYLE", url_style, URL_STYLES)
    ssl_name = ENV_PREFIX + "S3_USE_SSL"
    use_ssl_text = get(ssl_name)
    use_ssl = None
    if use_ssl_text is not None:
        use_ssl = {"true": True, "false": False}.get(use_ssl_text.lower())
        if use_ssl is None:
            raise SettingsError(f"{ssl_name} must be true or false, got {use_ssl_text!r}")
    key_id, secret = _s3_credentials(get)
    return S3Settings(endpoint, region, url_style, use_ssl, key_id, secret)


def _s3_credentials(get: Callable[[str], str | None]) -> tuple[str | None, str | None]:
    """AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or else the `[default]` profile of LEO_FLEET_S3_CREDENTIALS_FILE (the
    AWS shared-credentials INI form: aws_access_key_id, aws_secret_access_key). Both or neither; no value is ever
    put in an error message."""
    key_id, secret = get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")
    if (key_id is None) != (secret is None):
        raise SettingsError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
    file_name = ENV_PREFIX + "S3_CREDENTIALS_FILE"
    path = get(file_name)
    if key_id is not None or path is None:
        return key_id, secret
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(Path(path).expanduser(), encoding="utf-8") as file:
            parser.read_file(file)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{file_name}={path!r} cannot be read: {exc.strerror or type(exc).__name__}") from None
    except configparser.Error:
        raise SettingsError(f"{file_name}={path!r} is not an INI file with a [{CREDENTIALS_PROFILE}] section") from None
    section = parser[CREDENTIALS_PROFILE] if parser.has_section(CREDENTIALS_PROFILE) else {}
    key_id, secret = section.get("aws_access_key_id") or None, section.get("aws_secret_access_key") or None
    if key_id is None or secret is None:
        raise SettingsError(
            f"{file_name}={path!r} needs aws_access_key_id and aws_secret_access_key in its [{CREDENTIALS_PROFILE}] "
            "section"
        )
    return key_id.strip(), secret.strip()
