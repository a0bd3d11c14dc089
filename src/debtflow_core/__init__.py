"""DebtFlow's domain core: entities, policies, ports and use cases.

Pure Python (standard library and msgspec only). Everything that does I/O lives behind the
ports in :mod:`debtflow_core.ports` and is implemented in ``debtflow_adapters``.
"""
