"""One subfolder per domain (ingest_observe, latency, detections, features, slo, health, anomaly, quality, reports);
loaded by definitions.py."""
