"""Job handlers: what a paid job actually does, keyed by its job type code.

A handler is a plain function `handler(job_input, context) -> dict`: it gets the JSON
object the user sent with the spend and a small read-only `JobContext`, and returns a
JSON object that becomes the job's `result`. It never touches money or job state —
the worker (jobs/services/) owns those — so a handler that raises simply makes the
job `failed`, and the worker refunds it.

The registry is code, not state: every worker process builds the same one at import
time (built-ins below plus the modules named in `settings.JOBS_HANDLER_MODULES`), so
nothing here has to agree across processes at run time.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class JobContext:
    """What a handler may know about its job besides the input."""

    job_id: int
    job_type: str
    user_id: int
    attempt: int

    def seed(self, job_input: dict) -> int:
        """A stable seed: the same job with the same input always reads the same.

        Derived from the job id too, so two users asking the same question do not get
        the same reading, yet a test can predict a job's result exactly.
        """
        canonical = json.dumps(job_input, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(f"{self.job_type}:{self.job_id}:{canonical}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def rng(self, job_input: dict) -> random.Random:
        return random.Random(self.seed(job_input))


Handler = Callable[[dict, JobContext], dict]

_registry: dict[str, Handler] = {}
_registry_lock = threading.Lock()
_modules_loaded = False


def register(code: str, handler: Handler | None = None, *, replace: bool = False):
    """Register `handler` for job type `code`; also usable as `@register("code")`.

    Registering a code twice is an error unless `replace=True`, so two modules cannot
    silently fight over a job type.
    """

    def _add(func: Handler) -> Handler:
        with _registry_lock:
            if code in _registry and _registry[code] is not func and not replace:
                raise ValueError(f"a handler for job type {code!r} is already registered")
            _registry[code] = func
        return func

    return _add(handler) if handler is not None else _add


def unregister(code: str) -> None:
    with _registry_lock:
        _registry.pop(code, None)


@contextmanager
def registered(code: str, handler: Handler) -> Iterator[Handler]:
    """Temporarily (re)register a handler — for tests that need a failing or slow one."""
    with _registry_lock:
        previous = _registry.get(code)
        _registry[code] = handler
    try:
        yield handler
    finally:
        with _registry_lock:
            if previous is None:
                _registry.pop(code, None)
            else:
                _registry[code] = previous


def load_handler_modules() -> None:
    """Import the extra handler modules named in settings (once per process).

    `JOBS_HANDLER_MODULES` (env, comma separated) lets a deployment add job types
    without touching this file; the tests use it to give a worker *process* a slow
    or failing handler.
    """
    global _modules_loaded
    if _modules_loaded:
        return
    for module in getattr(settings, "JOBS_HANDLER_MODULES", []):
        importlib.import_module(module)
    _modules_loaded = True


def get_handler(code: str) -> Handler | None:
    load_handler_modules()
    with _registry_lock:
        return _registry.get(code)


def registered_codes() -> list[str]:
    load_handler_modules()
    with _registry_lock:
        return sorted(_registry)


# --- Built-in handlers --------------------------------------------------------------

_OPENINGS = [
    "The whispers gather around your question",
    "A quiet voice answers from behind the veil",
    "The candle flickers, and the spirits lean closer",
    "Stars that watched your birth now turn toward you",
    "The old oak remembers what you have forgotten",
]
_OMENS = [
    "a door you thought was closed stands ajar",
    "a stranger's kindness carries a message meant for you",
    "what you planted in doubt will bloom in patience",
    "the river bends, but it never forgets the sea",
    "a small choice this week echoes far longer than it seems",
    "the answer is already written in something you own",
    "an old friend's name will come back to you for a reason",
]
_COUNSELS = [
    "Speak first; silence will not be read kindly.",
    "Wait three days before you decide.",
    "Trust the plan you made when you were calm.",
    "Let go of one thing so your hands are free.",
    "Ask the question you are afraid to ask.",
    "Keep your promise, even the small one.",
]
_MOODS = ["hopeful", "mysterious", "cautious", "radiant", "restless", "serene"]
_COLORS = ["silver", "indigo", "amber", "sea green", "crimson", "pearl white"]


def _text(job_input: dict, field: str, default: str, max_length: int = 500) -> str:
    value = job_input.get(field, default)
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    value = value.strip() or default
    if len(value) > max_length:
        raise ValueError(f"{field} must be at most {max_length} characters")
    return value


@register("fortune")
def fortune(job_input: dict, context: JobContext) -> dict:
    """A short Divine Whispers reading for the user's (optional) question."""
    question = _text(job_input, "question", "What does the future hold for me?")
    name = _text(job_input, "name", "seeker", max_length=100)
    rng = context.rng(job_input)
    opening, omen, counsel = rng.choice(_OPENINGS), rng.choice(_OMENS), rng.choice(_COUNSELS)
    lucky_number = rng.randint(1, 99)
    return {
        "kind": "fortune",
        "question": question,
        "reading": f"{opening}, {name}: {omen}. {counsel}",
        "mood": rng.choice(_MOODS),
        "lucky_number": lucky_number,
        "lucky_color": rng.choice(_COLORS),
    }


_MAJOR_ARCANA = [
    ("The Fool", "a new beginning", "recklessness"),
    ("The Magician", "skill and will", "trickery"),
    ("The High Priestess", "intuition", "secrets kept too long"),
    ("The Empress", "abundance", "smothering care"),
    ("The Emperor", "structure", "rigidity"),
    ("The Hierophant", "tradition", "blind conformity"),
    ("The Lovers", "a true choice", "disharmony"),
    ("The Chariot", "victory through will", "scattered force"),
    ("Strength", "gentle courage", "self-doubt"),
    ("The Hermit", "inner guidance", "isolation"),
    ("Wheel of Fortune", "a turning point", "resisting change"),
    ("Justice", "fairness", "an unpaid debt"),
    ("The Hanged Man", "a new perspective", "stalling"),
    ("Death", "an ending that frees you", "clinging to the past"),
    ("Temperance", "balance", "excess"),
    ("The Devil", "honest desire", "a chain you can remove"),
    ("The Tower", "sudden truth", "a disaster averted"),
    ("The Star", "hope", "lost faith"),
    ("The Moon", "dreams", "confusion lifting"),
    ("The Sun", "joy", "a delayed success"),
    ("Judgement", "a calling", "harsh self-judgement"),
    ("The World", "completion", "unfinished business"),
]
_POSITIONS = ("past", "present", "future")


@register("tarot")
def tarot(job_input: dict, context: JobContext) -> dict:
    """A three-card spread: past, present and future, each upright or reversed."""
    question = _text(job_input, "question", "What should I know right now?")
    rng = context.rng(job_input)
    cards = []
    for position, (name, upright, reversed_) in zip(
        _POSITIONS, rng.sample(_MAJOR_ARCANA, len(_POSITIONS)), strict=True
    ):
        is_reversed = rng.random() < 0.3
        cards.append(
            {
                "position": position,
                "card": name,
                "reversed": is_reversed,
                "meaning": reversed_ if is_reversed else upright,
            }
        )
    summary = "; ".join(f"{c['position']}: {c['card']} — {c['meaning']}" for c in cards)
    return {"kind": "tarot", "question": question, "cards": cards, "reading": summary}


_SIGNS = [
    # sign, (month, day) it starts
    ("capricorn", (12, 22)),
    ("aquarius", (1, 20)),
    ("pisces", (2, 19)),
    ("aries", (3, 21)),
    ("taurus", (4, 20)),
    ("gemini", (5, 21)),
    ("cancer", (6, 21)),
    ("leo", (7, 23)),
    ("virgo", (8, 23)),
    ("libra", (9, 23)),
    ("scorpio", (10, 23)),
    ("sagittarius", (11, 22)),
]
_SIGN_NAMES = {sign for sign, _ in _SIGNS}
_AREAS = ["love", "work", "health", "money", "friendship"]
_FORECASTS = [
    "is quietly in your favour",
    "asks for patience before it rewards you",
    "brings a surprise before sunset",
    "needs one honest conversation",
    "shines brightest when you stop pushing",
]


def sign_for_birthday(month: int, day: int) -> str:
    """The zodiac sign of a birthday (tropical dates)."""
    sign = "capricorn"
    for name, start in _SIGNS[1:]:
        if (month, day) >= start:
            sign = name
    return "capricorn" if (month, day) >= (12, 22) else sign


def _sign_from_input(job_input: dict) -> str:
    sign = job_input.get("sign")
    if sign is not None:
        if not isinstance(sign, str) or sign.strip().lower() not in _SIGN_NAMES:
            raise ValueError(f"unknown zodiac sign {sign!r}")
        return sign.strip().lower()
    birthday = job_input.get("birthday")  # "MM-DD"
    if birthday is None:
        raise ValueError("horoscope needs a 'sign' or a 'birthday' (MM-DD)")
    try:
        month, day = (int(part) for part in str(birthday).split("-")[-2:])
        if not (1 <= month <= 12 and 1 <= day <= 31):
            raise ValueError
    except ValueError:
        raise ValueError(f"birthday must look like MM-DD, got {birthday!r}") from None
    return sign_for_birthday(month, day)


@register("horoscope")
def horoscope(job_input: dict, context: JobContext) -> dict:
    """Today's horoscope for a sign (or a birthday); an unknown sign fails the job."""
    sign = _sign_from_input(job_input)
    rng = context.rng({**job_input, "sign": sign})
    areas = rng.sample(_AREAS, 3)
    forecasts = dict(zip(areas, rng.sample(_FORECASTS, len(areas)), strict=True))
    reading = " ".join(f"Your {area} {text}." for area, text in forecasts.items())
    return {
        "kind": "horoscope",
        "sign": sign,
        "forecasts": forecasts,
        "reading": f"{sign.title()}: {reading}",
        "lucky_number": rng.randint(1, 99),
    }
