"""In-memory adapters for every port.

They are a product feature, not a test shortcut of ours: a tool embedding ``debtflow_core``
uses them to test itself without a database. They honour the same contract test suites as
the SQL adapters, transactions included: nothing is visible until ``commit``.
"""

from debtflow_adapters.memory.access_tokens import InMemoryAccessTokens
from debtflow_adapters.memory.clock import FixedClock
from debtflow_adapters.memory.imports import InMemoryImportStore, InMemoryPlacementWriter
from debtflow_adapters.memory.password_hasher import FastPasswordHasher
from debtflow_adapters.memory.rate_limiter import InMemoryRateLimiter
from debtflow_adapters.memory.unit_of_work import InMemoryStore, InMemoryUnitOfWork

__all__ = [
    "FastPasswordHasher",
    "FixedClock",
    "InMemoryAccessTokens",
    "InMemoryImportStore",
    "InMemoryPlacementWriter",
    "InMemoryRateLimiter",
    "InMemoryStore",
    "InMemoryUnitOfWork",
]
