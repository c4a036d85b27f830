"""A fake Stability AI REST API on loopback, for tests and benchmarks.

    async with FakeStability(api_key="sk-test") as fake:
        fake.on_prompt("boom", Status(500))
        ...  # point the client at fake.base_url

Standalone: ``python -m tests.fakes.stability --port 0 --latency 2`` prints ``LISTENING http://127.0.0.1:PORT``.
"""

from .behaviours import BadBody, Behaviour, Drop, Filtered, Hang, Slow, Status, Succeed
from .server import UNLIMITED_BALANCE, FakeStability, RecordedRequest
from .spec import PRICES

__all__ = [
    "PRICES",
    "UNLIMITED_BALANCE",
    "BadBody",
    "Behaviour",
    "Drop",
    "FakeStability",
    "Filtered",
    "Hang",
    "RecordedRequest",
    "Slow",
    "Status",
    "Succeed",
]
