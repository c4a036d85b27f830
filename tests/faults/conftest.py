"""The fault tests drive the real bot through the end-to-end harness of tests/e2e."""

from tests.e2e.conftest import harness, harness_factory

__all__ = ["harness", "harness_factory"]
