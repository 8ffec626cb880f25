"""Portal URLs, mounted at /portal/. Names are used by the navigation in templates/portal/base.html."""

from django.urls import path, register_converter
from django.urls.converters import StringConverter

from portal.views import analysis as analysis_views
from portal.views import auth, billing, departments, disputes, payments, plan, settings, stripe_checkout, webhooks
from portal.views import forecast as forecast_views
from portal.views import recommendations as recommendation_views


class PrintableConverter(StringConverter):
    """A path segment without control characters: no invoice number, payment id or key prefix has one (and
    PostgreSQL cannot even compare a NUL), so such a URL is a 404 before any lookup."""

    regex = r"[^/\x00-\x1f\x7f]+"


register_converter(PrintableConverter, "printable")

app_name = "portal"

urlpatterns = [
    # Signing in and out, password reset (auth)
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("password-reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", auth.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    # The running period, invoices, credit notes (billing)
    path("", billing.dashboard, name="dashboard"),
    path("invoices/", billing.invoice_list, name="invoices"),
    path("invoices/<printable:number>/", billing.invoice_detail, name="invoice"),
    path("invoices/<printable:number>/pdf", billing.invoice_pdf, name="invoice_pdf"),
    path("credit-notes/", billing.credit_note_list, name="credit_notes"),
    path("credit-notes/<printable:number>/pdf", billing.credit_note_pdf, name="credit_note_pdf"),
    # Disputes: the account's cases, opening one on an invoice, the case (e-mails link to it), its files (disputes)
    path("disputes/", disputes.dispute_list, name="disputes"),
    path("invoices/<printable:number>/dispute/", disputes.dispute_new, name="dispute_new"),
    path("disputes/<printable:public_id>/", disputes.dispute_detail, name="dispute"),
    path("disputes/<printable:public_id>/reply/", disputes.dispute_reply_view, name="dispute_reply"),
    path("disputes/<printable:public_id>/withdraw/", disputes.dispute_withdraw_view, name="dispute_withdraw"),
    path(
        "disputes/<printable:public_id>/attachments/<printable:token>/",
        disputes.dispute_attachment,
        name="dispute_attachment",
    ),
    # The plan: what the account is on, the plans beside it with their cost, changing it (plan)
    path("plan/", plan.plan_page, name="plan"),
    path("plan/change/", plan.plan_change, name="plan_change"),
    path("plan/changes/<printable:public_id>/cancel/", plan.plan_change_withdraw, name="plan_change_cancel"),
    # Payment method, automatic collection, balance, payments (payments)
    path("billing/", payments.billing_page, name="billing"),
    path("billing/card/", stripe_checkout.card_setup, name="card_setup"),
    path("billing/card/saved/", stripe_checkout.card_setup_return, name="card_setup_return"),
    path("invoices/<printable:number>/pay/", stripe_checkout.invoice_pay, name="invoice_pay"),
    path("billing/auto-collection/", payments.auto_collection_set, name="auto_collection"),
    path("billing/payments/<printable:public_id>/", payments.payment_receipt_page, name="payment_receipt"),
    # Departments of partners and tenants, the month's cost per department, the ERP journal (departments)
    path("departments/", departments.departments, name="departments"),
    path("departments/partners/<printable:public_id>/", departments.partner_department, name="partner_department"),
    path("departments/tenants/<printable:public_id>/", departments.tenant_department, name="tenant_department"),
    path("allocation/", departments.allocation, name="allocation"),
    path("journal.csv", departments.journal_csv, name="journal_csv"),
    # Forecast
    path("forecast/", forecast_views.forecast_page, name="forecast"),
    # Cost analysis: a range of months per charge, tenant, partner and feature, and the efficiency metrics
    path("analysis/", analysis_views.analysis_page, name="analysis"),
    # Recommendations: the advice of the last re-rating of the closed months, and the risks
    path("recommendations/", recommendation_views.recommendations_page, name="recommendations"),
    # Budgets, API keys, users (settings)
    path("budgets/", settings.budget_list, name="budgets"),
    path("budgets/new/", settings.budget_create, name="budget_create"),
    path("budgets/<int:pk>/", settings.budget_edit, name="budget_edit"),
    path("budgets/<int:pk>/delete/", settings.budget_delete, name="budget_delete"),
    path("api-keys/", settings.api_key_list, name="api_keys"),
    path("api-keys/new/", settings.api_key_create, name="api_key_create"),
    path("api-keys/<printable:prefix>/revoke/", settings.api_key_revoke, name="api_key_revoke"),
    # Webhook endpoints, their deliveries and attempts (webhooks)
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path("webhooks/new/", webhooks.webhook_create, name="webhook_create"),
    path("webhooks/<printable:public_id>/", webhooks.webhook_detail, name="webhook"),
    path("webhooks/<printable:public_id>/edit/", webhooks.webhook_edit, name="webhook_edit"),
    path("webhooks/<printable:public_id>/test/", webhooks.webhook_test, name="webhook_test"),
    path("webhooks/<printable:public_id>/resend-failed/", webhooks.webhook_resend_failed, name="webhook_resend_failed"),
    path("webhooks/<printable:public_id>/enable/", webhooks.webhook_enable, name="webhook_enable"),
    path("webhooks/<printable:public_id>/disable/", webhooks.webhook_disable, name="webhook_disable"),
    path("webhooks/<printable:public_id>/rotate-secret/", webhooks.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<printable:public_id>/delete/", webhooks.webhook_delete, name="webhook_delete"),
    path(
        "webhooks/<printable:public_id>/deliveries/<printable:delivery_id>/",
        webhooks.webhook_delivery,
        name="webhook_delivery",
    ),
    path(
        "webhooks/<printable:public_id>/deliveries/<printable:delivery_id>/resend/",
        webhooks.webhook_delivery_resend,
        name="webhook_delivery_resend",
    ),
    path("users/", settings.user_list, name="users"),
    path("users/invite/", settings.user_invite, name="user_invite"),
    path("users/<int:pk>/", settings.user_edit, name="user_edit"),
    path("users/<int:pk>/remove/", settings.user_remove, name="user_remove"),
]
