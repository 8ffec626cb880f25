"""Factories build rows through the services, so tests start from states production can reach."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.utils.text import slugify

from accounts.models import Account, AccountUser
from accounts.services import account_create, account_user_create


class AccountFactory(factory.Factory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Customer {n}")
    currency = "USD"
    # Derived from the name, not hash(): str hashes change with PYTHONHASHSEED, i.e. from run to run.
    billing_emails = factory.LazyAttribute(lambda o: [f"ap-{slugify(o.name) or 'customer'}@example.com"])
    tax_country = "US"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_create(**kwargs)


class AccountUserFactory(factory.Factory):
    class Meta:
        model = AccountUser

    account = factory.SubFactory(AccountFactory)
    email = factory.Sequence(lambda n: f"user{n}@customer.example")
    role = AccountUser.Role.MEMBER
    password = "portal-pass-123"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_user_create(**kwargs)


class StaffUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@ledgerline.example")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "staff-pass-123")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        self.save()
        for group in extracted or ():
            self.groups.add(group)
