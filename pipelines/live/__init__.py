"""The live path: incidents and SLO pages computed as the loader commits, and their delivery as alerts
(docs/live.md). The hourly marts stay the system of record; this path answers within a minute."""
