from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account
from accounts.services import api_key_create
from common.errors import BillingError
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Issue an API key and print its secret once. Examples: "
        "create_api_key --account acc_000001 --scopes ingest,read; "
        "create_api_key --account acc_000001 --scopes disputes; create_api_key --account acc_000001 --scopes "
        "read,subscription; create_api_key --scopes export"
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", help="Public id of the account (acc_…); omit for export keys.")
        parser.add_argument("--tenant", help="Pin the key to one tenant (ten_…) of the account.")
        parser.add_argument(
            "--scopes", required=True, help="Comma-separated: ingest, read, disputes, subscription, webhooks, export."
        )
        parser.add_argument("--name", default="", help="What the key is for.")

    def handle(self, *args, **options):
        account = tenant = None
        if options["account"]:
            account = Account.objects.filter(public_id=options["account"]).first()
            if account is None:
                raise CommandError(f"No account with public id {options['account']!r}.")
        if options["tenant"]:
            tenant = Tenant.objects.filter(public_id=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with public id {options['tenant']!r}.")
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        name = options["name"] or f"{'/'.join(scopes)} key (command line)"
        try:
            api_key, secret = api_key_create(name=name, scopes=scopes, account=account, tenant=tenant)
        except BillingError as exc:
            raise CommandError(exc.message) from exc
        owner = account.public_id if account else "platform-wide"
        self.stdout.write(f"Created API key {api_key.prefix}… ({', '.join(api_key.scopes)}; {owner}).")
        self.stdout.write("The secret is shown only now; store it safely:")
        self.stdout.write(secret)
