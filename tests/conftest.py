"""Fixtures shared by every test folder."""

from tests.moto_server import aws, moto_server
from tests.prometheus_server import metrics_target, prometheus

__all__ = ["aws", "metrics_target", "moto_server", "prometheus"]
