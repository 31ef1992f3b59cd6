"""One subfolder per domain (ingest_observe, latency, links, health, anomaly, reports); loaded by definitions.py."""
