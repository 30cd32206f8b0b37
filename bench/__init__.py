"""Benchmarks: a load generator for any server of the AgentHub contract, and the matrix runner."""
