"""Accounts: the billing entity (one consolidated invoice a month), its portal users and budgets."""
