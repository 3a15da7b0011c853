"""Monitoring: reference profiles, drift, data quality and live performance (placeholder)."""
