"""Pay a purchase on `make run`'s local Stripe, as the app would with its client secret:
`.venv/bin/python scripts/demo_pay.py pi_… [card number]` (default 4242 4242 4242 4242;
4000 0000 0000 0341 is declined). localstripe then sends the signed
`payment_intent.succeeded` webhook that credits the points.

STRIPE_API_BASE and STRIPE_SECRET_KEY (default make run's test key) say which local
Stripe; without STRIPE_API_BASE it is the one `make run` starts: LOCALSTRIPE_PORT, else
PORT + 1000 (9000 for make run's default port 8000), as scripts/run.sh chooses it.
"""

import contextlib
import os
import sys

import stripe


def local_stripe_base() -> str:
    """Where `make run` started its local Stripe (the same rule as scripts/run.sh)."""
    if os.environ.get("STRIPE_API_BASE"):
        return os.environ["STRIPE_API_BASE"]
    port = os.environ.get("LOCALSTRIPE_PORT") or str(int(os.environ.get("PORT", "8000")) + 1000)
    return f"http://127.0.0.1:{port}"


def main() -> None:
    payment_id = sys.argv[1]
    card = sys.argv[2] if len(sys.argv) > 2 else "4242424242424242"
    client = stripe.StripeClient(
        os.environ.get("STRIPE_SECRET_KEY", "sk_test_make_run"),
        base_addresses={"api": local_stripe_base()},
    )
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(payment_id, params={"payment_method": method.id})
    with contextlib.suppress(stripe.CardError):
        client.v1.payment_intents.confirm(payment_id)
    print(client.v1.payment_intents.retrieve(payment_id).status)


if __name__ == "__main__":
    main()
