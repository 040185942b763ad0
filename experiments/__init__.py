"""Verification, the ``tfd`` command line, and (later) training and the weekly experiments.

May import both ``derivations`` and ``model``; nothing imports this package but the tests.
"""
