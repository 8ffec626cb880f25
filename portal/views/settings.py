"""Budgets, API keys and the account's users."""

from django.http import HttpResponse

from portal.access import MANAGE_BUDGETS, MANAGE_KEYS, MANAGE_USERS, portal_view


@portal_view
def budget_list(request):
    return HttpResponse("budgets")


@portal_view(roles=MANAGE_BUDGETS)
def budget_create(request):
    return HttpResponse("budget create")


@portal_view(roles=MANAGE_BUDGETS)
def budget_edit(request, pk):
    return HttpResponse("budget edit")


@portal_view(roles=MANAGE_BUDGETS)
def budget_delete(request, pk):
    return HttpResponse("budget delete")


@portal_view
def api_key_list(request):
    return HttpResponse("keys")


@portal_view(roles=MANAGE_KEYS)
def api_key_create(request):
    return HttpResponse("key create")


@portal_view(roles=MANAGE_KEYS)
def api_key_revoke(request, prefix):
    return HttpResponse("key revoke")


@portal_view
def user_list(request):
    return HttpResponse("users")


@portal_view(roles=MANAGE_USERS)
def user_invite(request):
    return HttpResponse("invite")


@portal_view(roles=MANAGE_USERS)
def user_edit(request, pk):
    return HttpResponse("user edit")


@portal_view(roles=MANAGE_USERS)
def user_remove(request, pk):
    return HttpResponse("user remove")
