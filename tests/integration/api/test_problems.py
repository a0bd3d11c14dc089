"""Every domain error of the core has its problem+json answer."""

from __future__ import annotations

import debtflow_core.errors as errors
from debtflow_http.problems import _DOMAIN


def subclasses(kind: type) -> set[type]:
    found = set(kind.__subclasses__())
    return found.union(*(subclasses(k) for k in found))


def test_every_domain_error_has_an_answer():
    unanswered = {
        kind for kind in subclasses(errors.DomainError) if not set(kind.__mro__) & set(_DOMAIN)
    }
    assert unanswered == set()
