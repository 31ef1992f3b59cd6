"""The Kafka tests' fixtures (session broker, per-test settings) live in tests/conftest.py, shared with
tests/reliability."""
