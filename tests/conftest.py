"""Fixtures shared by every test folder."""

from tests.moto_server import aws, moto_server

__all__ = ["aws", "moto_server"]
