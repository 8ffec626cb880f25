from celery import shared_task

from accounts.models import Account
from common import clock
from usage.services import quotas_check


@shared_task(acks_late=True, max_retries=5, default_retry_delay=5, soft_time_limit=60)
def quotas_check_task(account_id: int) -> None:
    """Evaluate an account's plan limits against its committed usage (see usage.services.quotas_schedule)."""
    account = Account.objects.filter(pk=account_id).first()
    if account is not None:
        quotas_check(account=account, now=clock.now())
