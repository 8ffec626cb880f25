from django.db import models


class Counter(models.Model):
    """A named, monotonically increasing counter for gap-free numbers (public ids, invoice series).

    Invariant: ``value`` is the last number handed out; it only grows, one at a time, under a row
    lock taken by ``common.services.counter_next`` inside the caller's transaction, so a rolled-back
    caller gives its number back and no two callers ever get the same number.
    """

    name = models.CharField(max_length=64, primary_key=True, help_text="Series name, e.g. 'account' or 'invoice:2026'.")
    value = models.PositiveBigIntegerField(default=0, help_text="The last number handed out in this series.")

    class Meta:
        verbose_name = "number series"
        verbose_name_plural = "number series"

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"
