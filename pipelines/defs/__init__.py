"""One subfolder per domain (ingest_observe, latency, slo, links, resets, health, anomaly, quality, reports);
loaded by definitions.py."""
