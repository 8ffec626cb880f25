"""Disputes: a customer's challenge of invoiced charges, worked by billing staff and settled with
credit notes."""
