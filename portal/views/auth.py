"""Signing in and out, and password reset by e-mail, with the portal's templates.

Password reset is for portal users (people of a customer account) only; staff reset theirs with an
administrator. A portal user invited without a password (``account_user_create`` leaves it unusable) sets
the first one through the same link. The reset link is absolute, built from the request's host (which
``ALLOWED_HOSTS`` vouches for) and scheme; the e-mail says nothing about whether an address is known.
"""

from django.contrib.auth import forms as auth_forms
from django.contrib.auth import views as auth_views
from django.shortcuts import render
from django.urls import reverse_lazy

from accounts.selectors import portal_user_for_email
from portal import throttle


def _too_many(request, wait: int, what: str):
    response = render(request, "portal/too_many.html", {"what": what, "minutes": max(1, wait // 60)}, status=429)
    response["Retry-After"] = str(wait)
    return response


class PortalAuthenticationForm(auth_forms.AuthenticationForm):
    """Portal users sign in with their e-mail address, in any letter case. It is their username unless the
    address did not fit Django's username rules (then they have a generated one), so the address is resolved
    to the username first (``portal_user_for_email``: look-alike letters are not the address); anything else
    is tried as a username (staff). The sign-in limit counts under the username resolved to."""

    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "invalid_login": "Please enter a correct e-mail address and password. The password is case-sensitive.",
    }

    def clean(self):
        user = portal_user_for_email(email=self.cleaned_data.get("username") or "")
        if user is not None:
            self.cleaned_data["username"] = user.get_username()
        return super().clean()


class PortalPasswordResetForm(auth_forms.PasswordResetForm):
    """Finds the login as signing in does; an active portal user without a usable password (invited, not
    signed in yet) is served too."""

    def get_users(self, email):
        user = portal_user_for_email(email=email)
        return [user] if user is not None and user.is_active else []


class LoginView(auth_views.LoginView):
    """Failed sign-ins are limited per login and client address, at the admin's sign-in as here, by django-axes
    (``accounts.sign_in``): it refuses a locked-out sign-in inside ``authenticate()`` and answers 429."""

    authentication_form = PortalAuthenticationForm
    template_name = "portal/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("portal:login")


class PasswordResetView(auth_views.PasswordResetView):
    """Reset requests are limited per login, from whichever client (``portal.throttle``)."""

    form_class = PortalPasswordResetForm
    template_name = "portal/password_reset.html"
    email_template_name = "portal/email/password_reset.txt"
    subject_template_name = "portal/email/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def post(self, request, *args, **kwargs):
        wait = throttle.reset_requested(email=request.POST.get("email", ""))
        if wait:
            return _too_many(request, wait, "Too many password resets were asked for this address.")
        return super().post(request, *args, **kwargs)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/password_reset_complete.html"
