"""Settings for benchmark processes: the product's settings plus the peer library.

dj-wallet is installed in the bench environment only (requirements-bench.txt), so it is
added to INSTALLED_APPS here and nowhere else.
"""

from divine_whispers.settings import *  # noqa: F403
from divine_whispers.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "dj_wallet"]
