from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from accounts.models import Account

TENANT_PUBLIC_ID_RE = r"^ten_[a-z0-9][a-z0-9_]{0,58}$"
PARTNER_PUBLIC_ID_RE = r"^prt_[a-z0-9][a-z0-9_]{0,58}$"


class Tenant(models.Model):
    """A usage source of an account (one customer deployment of the vendor's product).

    A tenant counts as active in a period when ``[activated_at, archived_at)`` overlaps it; that is
    what tenant-months are counted from.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        ARCHIVED = "archived", "Archived"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="tenants")
    public_id = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(TENANT_PUBLIC_ID_RE, "Use ten_ followed by lower-case letters, digits or _.")],
        help_text="Identifier the product reports usage with, e.g. ten_acme_eu. Unique platform-wide; never reused.",
    )
    name = models.CharField(max_length=200)
    department = models.CharField(
        max_length=120,
        blank=True,
        help_text="Cost-allocation department of the tenant's usage not sent for a master partner with a department.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    activated_at = models.DateTimeField(help_text="Start of the tenant's billable life (inclusive, UTC).")
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="End of the billable life (exclusive, UTC). Empty while live."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["account", "public_id"]
        constraints = [
            models.CheckConstraint(
                name="tenant_archived_after_activated",
                condition=Q(archived_at__isnull=True) | Q(archived_at__gt=F("activated_at")),
                violation_error_message="A tenant must be archived after it was activated.",
            ),
            models.CheckConstraint(
                name="tenant_archived_status_matches",
                condition=(Q(status="archived") & Q(archived_at__isnull=False))
                | (~Q(status="archived") & Q(archived_at__isnull=True)),
                violation_error_message="Archived tenants (and only they) have an archive time.",
            ),
        ]
        indexes = [models.Index(fields=["account", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class MasterPartner(models.Model):
    """A partner (supplier, carrier, ...) shared by all tenants of one account. Usage events name it
    in ``properties.partner_id``; its department allocates cost."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="partners")
    public_id = models.CharField(
        max_length=64,
        validators=[RegexValidator(PARTNER_PUBLIC_ID_RE, "Use prt_ followed by lower-case letters, digits or _.")],
        help_text="Identifier used in events' partner_id, e.g. prt_supplier_001. Unique within the account.",
    )
    name = models.CharField(max_length=200)
    department = models.CharField(max_length=120, blank=True, help_text="Cost-allocation department.")
    activated_at = models.DateTimeField(help_text="Start of the partner's billable life (inclusive, UTC).")
    deactivated_at = models.DateTimeField(null=True, blank=True, help_text="End (exclusive, UTC); empty while active.")
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["account", "public_id"]
        verbose_name = "master partner"
        constraints = [
            models.UniqueConstraint(fields=["account", "public_id"], name="partner_public_id_unique_per_account"),
            models.CheckConstraint(
                name="partner_deactivated_after_activated",
                condition=Q(deactivated_at__isnull=True) | Q(deactivated_at__gt=F("activated_at")),
                violation_error_message="A partner must be deactivated after it was activated.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def is_active(self) -> bool:
        return self.deactivated_at is None
