"""Usage metering: the append-only store of billable events, its hourly rollups, and quota alerts.

Its own app because it is the hot path — bulk ingestion through PostgreSQL ``COPY``, tables laid out
for monthly partitioning, and aggregates maintained as events arrive — with a lifecycle (retention,
partitions, replays) separate from the catalogue and the invoices that read from it.
"""
