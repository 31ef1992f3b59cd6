"""Host collectors: real Linux CXL telemetry (cxl monitor JSON lines, rasdaemon, sysfs) mapped to the contract's
rows and published with the project's producer (docs/collect.md)."""

# The on-disk spool's bound unless --spool-max-bytes says otherwise (here, so the CLI parser needs no Kafka import).
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
