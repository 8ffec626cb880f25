"""Reads about accounts and their users."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q


def account_user_email_taken(*, email: str) -> bool:
    """Whether any login (portal or staff) already uses ``email`` as e-mail or username."""
    User = get_user_model()
    return User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).exists()
