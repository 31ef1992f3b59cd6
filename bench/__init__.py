"""Benchmarks, run from the repository root as modules (`python -m bench.<name>`, `make bench`): like tests/, a
package of the checkout, never of the wheel, so a benchmark may reuse the test fixtures' servers (tests/postgres.py,
tests/s3.py)."""
