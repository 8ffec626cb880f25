"""Primitives every billing app needs and none owns: money and rounding, half-open periods,
locked counters for gap-free numbering and public ids, and the domain error type.

It is an app (not a plain package) because the counters are rows in the database.
"""
