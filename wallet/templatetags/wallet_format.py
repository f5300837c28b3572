"""Template filters for points (wallet/formatting.py): `n|points`, `n|signed_points`."""

from django import template

from wallet import formatting

register = template.Library()
register.filter("points", formatting.points)
register.filter("signed_points", formatting.signed_points)
