import datetime as dt
import re

from django.core.management.base import BaseCommand, CommandError

from common import clock
from common.errors import BillingError

DURATION = re.compile(r"^(\d+)([dhm])$")


class Command(BaseCommand):
    help = (
        "The test clock (demo and test settings only): show it, set it to a time, advance it (e.g. 10d, 6h, 30m), "
        "or reset it to real time."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["show", "set", "advance", "reset"])
        parser.add_argument("value", nargs="?", help="set: 2026-12-01T00:05Z; advance: 10d, 6h or 30m")

    def handle(self, *args, action, value, **options):
        try:
            if action == "set":
                if not value:
                    raise CommandError("Give the time, e.g. 2026-12-01T00:05Z.")
                try:
                    at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise CommandError(f"Not a time: {value!r}; use e.g. 2026-12-01T00:05Z.") from None
                clock.clock_set(at=at)
            elif action == "advance":
                match = DURATION.match(value or "")
                if not match:
                    raise CommandError("Advance by a duration such as 10d, 6h or 30m.")
                unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
                clock.clock_advance(by=dt.timedelta(**{unit: int(match.group(1))}))
            elif action == "reset":
                clock.clock_reset()
        except BillingError as exc:
            raise CommandError(exc.message) from None
        if not clock.enabled():
            state = "real time; the test clock is off in these settings"
        else:
            state = "test clock, frozen" if clock.frozen_at() else "real time"
        self.stdout.write(f"Now: {clock.now().isoformat()} ({state})")
