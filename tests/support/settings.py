"""The environment variables the settings read, found by asking them rather than listed
by hand, so that a new setting is covered by every test that uses this."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping

from debtflow_adapters import settings as settings_module
from debtflow_adapters.settings import Settings


class _Recording(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def setting_variables() -> set[str]:
    """Every ``DEBTFLOW_*`` variable :meth:`Settings.from_env` reads."""
    environment = _Recording()
    Settings.from_env(environment)
    return environment.asked


def variables_named_in_settings() -> set[str]:
    """Every ``DEBTFLOW_*`` name written in the settings module (messages included): read
    elsewhere than in :meth:`Settings.from_env`, a variable still shows up here."""
    source = inspect.getsource(settings_module)
    return set(re.findall(r"\bDEBTFLOW_[A-Z0-9_]*[A-Z0-9]", source))
