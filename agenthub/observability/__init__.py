"""Logs, request context and Prometheus metrics."""
