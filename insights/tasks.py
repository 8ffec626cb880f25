"""Insights' periodic tasks: thin, each calls one service."""
