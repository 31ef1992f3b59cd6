"""Host collectors: real Linux CXL telemetry (cxl monitor JSON lines, sysfs) mapped to the contract's rows and
published with the project's producer (docs/collect.md)."""
