"""Display formats for English (the admin console's language): one unambiguous format for moments and
days, ``2026-11-30 23:59 UTC`` and ``2026-11-30``, instead of Django's ``Nov. 30, 2026, 11:59 p.m.``.
Only display formats: input formats stay Django's. Customer-facing templates (portal, e-mails, PDFs)
name their own formats and are not affected."""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
YEAR_MONTH_FORMAT = "Y-m"
