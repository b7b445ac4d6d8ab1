"""Horizontal, metrics-driven autoscaler for Kubernetes node groups."""

__version__ = "0.1.0"
