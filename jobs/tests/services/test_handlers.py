"""The handler registry and the built-in readings (pure functions, no database)."""

from __future__ import annotations

import pytest

from jobs import handlers
from jobs.handlers import JobContext, get_handler, register, registered, unregister


def ctx(job_id: int = 7, job_type: str = "fortune") -> JobContext:
    return JobContext(job_id=job_id, job_type=job_type, user_id=1, attempt=1)


def test_builtin_job_types_of_the_demo_have_handlers():
    assert {"fortune", "tarot", "horoscope"} <= set(handlers.registered_codes())


def test_fortune_is_deterministic_per_job_and_input():
    question = {"question": "Will I find my keys?", "name": "Ada"}
    first = handlers.fortune(question, ctx())
    assert handlers.fortune(dict(question), ctx()) == first
    assert first["question"] == "Will I find my keys?"
    assert first["reading"].startswith(tuple(handlers._OPENINGS))
    assert ", Ada: " in first["reading"]
    assert 1 <= first["lucky_number"] <= 99
    # Another job (or another question) reads differently — across a few jobs at least.
    others = {handlers.fortune(question, ctx(job_id=n))["reading"] for n in range(8, 20)}
    assert len(others | {first["reading"]}) > 1
    assert handlers.fortune({}, ctx())["question"] == "What does the future hold for me?"


def test_fortune_rejects_a_non_string_question():
    with pytest.raises(ValueError, match="question must be a string"):
        handlers.fortune({"question": 42}, ctx())


def test_tarot_draws_three_distinct_cards_deterministically():
    result = handlers.tarot({"question": "Should I move?"}, ctx(job_type="tarot"))
    assert [card["position"] for card in result["cards"]] == ["past", "present", "future"]
    assert len({card["card"] for card in result["cards"]}) == 3
    assert result == handlers.tarot({"question": "Should I move?"}, ctx(job_type="tarot"))


@pytest.mark.parametrize(
    ("job_input", "sign"),
    [
        ({"sign": "Leo"}, "leo"),
        ({"birthday": "03-21"}, "aries"),
        ({"birthday": "1990-01-19"}, "capricorn"),
        ({"birthday": "12-25"}, "capricorn"),
        ({"birthday": "11-30"}, "sagittarius"),
    ],
)
def test_horoscope_sign_from_sign_or_birthday(job_input, sign):
    result = handlers.horoscope(job_input, ctx(job_type="horoscope"))
    assert result["sign"] == sign
    assert len(result["forecasts"]) == 3


@pytest.mark.parametrize(
    "job_input", [{}, {"sign": "ophiuchus"}, {"sign": 3}, {"birthday": "13-01"}, {"birthday": "x"}]
)
def test_horoscope_without_a_valid_sign_raises(job_input):
    with pytest.raises(ValueError):
        handlers.horoscope(job_input, ctx(job_type="horoscope"))


def test_registering_a_code_twice_needs_replace():
    def one(job_input, context):
        return {}

    def two(job_input, context):
        return {}

    register("test-twice", one)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register("test-twice", two)
        register("test-twice", two, replace=True)
        assert get_handler("test-twice") is two
    finally:
        unregister("test-twice")
    assert get_handler("test-twice") is None


def test_registered_context_restores_the_previous_handler():
    original = get_handler("fortune")

    def broken(job_input, context):
        raise RuntimeError("nope")

    with registered("fortune", broken):
        assert get_handler("fortune") is broken
    assert get_handler("fortune") is original
