"""API keys in the back-office: issue one (shown once), list them, revoke them.

Keys are made and revoked by `wallet.services.api_keys`, which hashes them and audits each change;
this admin only shapes the pages around it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from wallet.models import ApiToken
from wallet.services import api_keys


class ApiTokenIssueForm(forms.ModelForm):
    """Issue a key: whom for, a label, how long. The key is generated, never typed."""

    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        help_text="Leave empty for the default lifetime (API_TOKEN_TTL).",
    )

    issuer: Any = None  # set per request by ApiTokenAdmin.get_form

    class Meta:
        model = ApiToken
        fields = ["user", "name"]

    def clean_user(self) -> Any:
        user = self.cleaned_data["user"]
        refusal = api_keys.refuse_issue(self.issuer, user)
        if refusal is not None:
            raise forms.ValidationError(refusal)
        return user


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issue (`wallet.add_apitoken`), list and revoke (`wallet.delete_apitoken`) API keys.

    No page shows a key or its digest: the key appears once, in the answer to the form that
    issued it (not in a message, which would travel in a cookie); afterwards a key is known
    by its id, owner, label and dates. Revoking deletes the row: refused on the next request.
    """

    add_form = ApiTokenIssueForm
    list_display = ["id", "user", "name", "created", "expiry", "state"]
    list_filter = ["expiry"]
    search_fields = ["user__username", "name"]
    raw_id_fields = ["user"]
    readonly_fields = ["user", "name", "created", "expiry", "state"]
    fields = readonly_fields

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        return "expired" if obj.expiry <= timezone.now() else "active"

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        if obj is None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            form = type(form.__name__, (form,), {"issuer": request.user})
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None):
        return ["user", "name", "expires_in_days"] if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a key is issued or revoked, never edited

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        days = form.cleaned_data.get("expires_in_days")
        expires_in = timedelta(days=days) if days else None
        request._issued_api_key = api_keys.save_new_token(
            obj, expires_in=expires_in, actor=request.user
        )

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None):
        response = TemplateResponse(
            request,
            "admin/wallet/apitoken/issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "token": obj,
                "key": request._issued_api_key,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        api_keys.revoke_tokens(obj.user, actor=request.user, token_ids=[obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for token in queryset.select_related("user"):
            api_keys.revoke_tokens(token.user, actor=request.user, token_ids=[token.pk])
