"""Prometheus: the application's metrics, their exposition, and the Telemetry adapter."""
