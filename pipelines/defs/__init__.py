"""One subfolder per domain (ingest_observe, latency, detections, features, slo, health, anomaly, quality, reports,
pilot); loaded by definitions.py."""
