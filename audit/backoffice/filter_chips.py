"""What a list reached from a record is filtered to, said on the list itself.

A wallet's page links to "its" transactions, jobs, approval requests and audit events as
`?wallet__id__exact=4` (or `user__id__exact`, `transaction__id__exact`): Django filters
the list but shows nothing of it (the search box is empty, the filter sidebar offers
no such choice), so "361 results" reads as the whole ledger. `FilterChipsMixin` names
each such filter in a removable chip ("Wallet: Wallet of alice (880 pts) ✕"), whose link
is the same list without it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import FieldDoesNotExist
from django.db.models import ForeignKey, OneToOneField
from django.http import HttpRequest, HttpResponse

CHIP_SUFFIXES = ("__id__exact", "__exact", "_id")


class FilterChipsMixin:
    """For a ModelAdmin: the `filter_chips` of its changelist (read by the template
    admin/backoffice/filter_chips.html, included by admin/backoffice/change_list.html)."""

    change_list_template = "admin/backoffice/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        chips = filter_chips(self.model, request)
        response: HttpResponse = super().changelist_view(
            request, {**(extra_context or {}), "filter_chips": chips}
        )
        return response


def filter_chips(model: Any, request: HttpRequest) -> list[dict[str, str]]:
    """One chip per query parameter naming a related record by id: its label (the
    record's own name, or "#id (not found)") and the list's URL without it."""
    chips = []
    for key, value in request.GET.items():
        field = related_field(model, key)
        if field is None:
            continue
        target = field.related_model
        found = target._default_manager.filter(pk=value).first() if value.isdigit() else None
        label = str(found) if found is not None else f"#{value} (not found)"
        kept = {k: v for k, v in request.GET.items() if k not in (key, "p")}
        chips.append(
            {
                "title": str(field.verbose_name).capitalize(),
                "label": label,
                "remove_url": f"{request.path}?{urlencode(kept)}" if kept else request.path,
            }
        )
    return chips


def related_field(model: Any, key: str) -> Any:
    """The foreign key a parameter like `wallet__id__exact` filters on, or None."""
    for suffix in CHIP_SUFFIXES:
        if key.endswith(suffix):
            name = key[: -len(suffix)]
            break
    else:
        return None
    if "__" in name:
        return None
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, ForeignKey | OneToOneField) else None
