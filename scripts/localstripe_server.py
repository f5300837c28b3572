"""Start localstripe (a local, stateful fake of the Stripe API) for development, tests
and drills: `python scripts/localstripe_server.py --port 8420`.

localstripe keeps its objects in memory and, by default, also pickles them to a fixed
file in /tmp that every instance on the machine shares and reloads on start. Here that
file is neither read nor written: each run starts empty and two runs (two developers, the
test suite beside `make run`) never see each other's payments.
"""

import sys

from localstripe import resources, server


def main() -> None:
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    if "--from-scratch" not in sys.argv:
        sys.argv.append("--from-scratch")
    server.start()


if __name__ == "__main__":
    main()
