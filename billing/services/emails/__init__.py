"""E-mails about invoices and credit notes: queued as ``EmailDelivery`` rows, sent by a Celery task.

When: a new invoice when it is finalized (``invoice:<pk>``), a credit note when it is issued
(``credit_note:<pk>``), reminders before the due date and overdue notices after it (the daily
``billing.invoice_reminders`` schedule, ``reminder:<pk>:7d`` / ``overdue:<pk>:14d``), and resends asked
for by staff (no key). A ``dedup_key`` is unique, so a scheduled e-mail is queued once per key.

Delivery is at least once, not exactly once: the mail server may accept a message and then the commit that
records it fail, or the worker die, and the delivery is sent again. Sending (``email_send``) holds the
delivery's row lock for the whole attempt, so on PostgreSQL duplicate tasks for one delivery are serialized:
the second waits, then finds it sent and sends nothing (SQLite ignores ``select_for_update``; there
concurrent tasks are not kept apart). Temporary failures (4xx replies, lost
connections, timeouts) come back with the seconds to wait before the next attempt, doubling from
``BILLING_EMAIL_RETRY_SECONDS``, until ``BILLING_EMAIL_MAX_ATTEMPTS``; permanent failures (5xx) fail at
once. The server's reply is kept on the row.
"""
