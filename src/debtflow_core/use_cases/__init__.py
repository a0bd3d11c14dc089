"""Use cases: one class per verb, each with a single ``execute`` entry point.

Each takes an explicit :class:`~debtflow_core.actor.Actor`, applies the policy of
:mod:`debtflow_core.policy`, and runs in one unit of work: a write commits at its end
together with its audit entry, or changes nothing.
"""
