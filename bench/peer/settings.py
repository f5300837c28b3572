"""The product's settings plus dj-wallet and the peer URL (bench only)."""

from divine_whispers.settings import *  # noqa: F403
from divine_whispers.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "dj_wallet"]
if "rest_framework.authtoken" not in INSTALLED_APPS:
    INSTALLED_APPS.append("rest_framework.authtoken")
ROOT_URLCONF = "bench.peer.urls"
