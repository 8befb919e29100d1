"""Plain-English questions to semantic queries, by rules: the sandbox's stand-in for Omni's AI query generator.

Deterministic on purpose: the same question, topic and "today" always give the same `Query`, so tests and
demos can rely on the answers. The parser reads a question in passes, each one blanking the words it used so
later passes cannot reuse them:

1. time filters ("last quarter", "in Q3 2025", "since March 2025", "past 90 days"), resolved against `today`;
2. known values of the topic's dimensions ("in the West", "for Jeans", "Acme brand", "returned");
3. ranking ("top 5", "bottom 3", "highest", "lowest") and explicit sorting ("sorted by orders");
4. measures and dimensions, by label and synonym, longest phrase first ("average order value" before "orders").

Relative periods mean complete calendar periods before today's ("last 6 months" on 2026-11-01 is May to
October 2026); "past/last N days or weeks" end yesterday; "this quarter/year" is the whole calendar period;
"since ..." and "... to date" run to yesterday, the last day with data. A dimension given two or more values
("West and East") is also grouped by, so the answer compares them.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from omni_bridge.sandbox._dataset import DEFAULT_TODAY
from omni_bridge.sandbox._query import MAX_LIMIT, Filter, Query, QuestionNotUnderstood, Sort
from omni_bridge.sandbox._semantic import Dimension, Model, Topic, phrase_pattern

__all__ = ["describe_capabilities", "parse_question"]

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name} | {"sept": 9}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NUMBERS = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight"))}
_NUMBERS |= {"nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_NUMBER_RE = r"\d+|" + "|".join(_NUMBERS)
_UNITS = r"days?|weeks?|months?|quarters?|years?"
_PERIOD_RE = rf"q[1-4]\s*(?:of\s+)?\d{{4}}|\d{{4}}\s*-?\s*q[1-4]|(?:{_MONTH_RE})\s+(?:of\s+)?\d{{4}}|(?:19|20)\d{{2}}"
_ORDINAL_QUARTERS = {"first": "q1", "1st": "q1", "second": "q2", "2nd": "q2", "third": "q3", "3rd": "q3",
                     "fourth": "q4", "4th": "q4"}  # fmt: skip
_RANKING = re.compile(
    rf"(?<!\w)(?P<word>top|bottom|best|worst|highest|lowest|largest|smallest|biggest|most|least|fewest)"
    rf"(?:\s+(?P<n>{_NUMBER_RE}))?(?!\w)"
)
_DESCENDING_WORDS = {"top", "best", "highest", "largest", "biggest", "most"}
_SORTED_BY = re.compile(r"(?<!\w)(?:sort(?:ed)?|order(?:ed)?|rank(?:ed)?)\s+by(?!\w)")
# An ambiguous phrase ("customers": a count, or the customer dimension) is a dimension after these words.
_DIMENSION_CONTEXT = re.compile(r"(?:\bby|\bper|\beach|\bwhich|\bwhat|\btop|\bbottom)(?:\s+(?:\d+|\w+-\w+))?\s+$")
_TOP_N_DEFAULT = 10
_DEFAULT_LIMIT = 1000


@dataclass
class _Scan:
    """The question being parsed; `text` has the characters already used replaced by spaces."""

    original: str
    text: str = ""
    fields: list[tuple[int, str, str]] = field(default_factory=list)  # (position, "measure"|"dimension", name)

    def __post_init__(self) -> None:
        self.text = self.original

    def take(self, match: re.Match[str]) -> re.Match[str]:
        self.text = self.text[: match.start()] + " " * (match.end() - match.start()) + self.text[match.end() :]
        return match

    def find(self, pattern: str | re.Pattern[str]) -> re.Match[str] | None:
        match = re.search(pattern, self.text)
        return self.take(match) if match else None


def parse_question(question: str, model: Model, topic: Topic, *, today: date = DEFAULT_TODAY) -> Query:
    """Turn `question` into a query on `topic` of `model`.

    Args:
        question: plain English, e.g. "top 5 products by revenue last quarter".
        model: the model the topic belongs to (its id goes into the query).
        topic: the topic to query; only its measures, dimensions and values are recognised.
        today: the date relative periods are resolved against.

    Raises:
        QuestionNotUnderstood: nothing in the question maps to the topic, a "by ..." names an unknown
            dimension, or a time filter was asked of a topic without dates. The message lists what can be asked.
    """
    scan = _Scan(_normalise(question))
    time_range = _take_time_range(scan, today)
    value_filters = _take_values(scan, topic)
    ranking = scan.find(_RANKING)
    sorted_by = scan.find(_SORTED_BY)
    _take_fields(scan, topic)
    _reject_unknown_group_by(scan, question, topic)

    dimensions = list(dict.fromkeys(name for _, kind, name in scan.fields if kind == "dimension"))
    dimensions += [name for name, values in value_filters.items() if len(values) > 1 and name not in dimensions]
    measures = list(dict.fromkeys(name for _, kind, name in scan.fields if kind == "measure"))
    if not measures:
        if not (dimensions or value_filters or time_range or ranking):
            raise QuestionNotUnderstood(_not_understood(question, topic, "it names no measure, dimension or filter"))
        measures = [topic.measures[0].name]

    filters = {name: Filter.any_of(values) for name, values in value_filters.items()}
    if time_range is not None:
        if topic.time_field is None:
            raise QuestionNotUnderstood(_not_understood(question, topic, "this topic has no dates to filter on"))
        filters[topic.time_field] = Filter.date_range(time_range[0].isoformat(), time_range[1].isoformat())

    sorts: list[Sort] = []
    limit: int | None = _DEFAULT_LIMIT
    if ranking is not None:
        descending = ranking["word"] in _DESCENDING_WORDS
        sorts = [Sort(column_name=_ranked_measure(scan, ranking, measures), sort_descending=descending)]
        if ranking["n"] is not None:
            limit = min(max(_number(ranking["n"]), 1), MAX_LIMIT)
        elif ranking["word"] in ("top", "bottom"):
            limit = _TOP_N_DEFAULT
    elif sorted_by is not None:
        sorts = [_explicit_sort(scan, sorted_by, measures, dimensions)]
    else:
        time_dimension = next((d for d in dimensions if topic.dimension(d).time_grain), None)
        if time_dimension is not None:
            sorts = [Sort(column_name=time_dimension, sort_descending=False)]
        elif dimensions:
            sorts = [Sort(column_name=measures[0], sort_descending=True)]
    return Query(
        model_id=model.id,
        topic=topic.name,
        table=topic.base_view,
        fields=[*dimensions, *measures],
        filters=filters,
        sorts=sorts,
        limit=limit,
    )


def describe_capabilities(topic: Topic) -> str:
    """What can be asked of `topic`, as a few lines of text: measures, dimensions, values, time filters, examples."""
    measures = "; ".join(f"{m.label} ({', '.join(m.synonyms[:4])})" for m in topic.measures)
    groupings = ", ".join(d.label for d in topic.dimensions)
    values = "; ".join(_describe_values(d) for d in topic.dimensions if d.values)
    lines = [
        f"Topic {topic.name!r} ({topic.label}): {topic.description}",
        f"Measures: {measures}.",
        f"Group by: {groupings} (say 'by <dimension>', 'per quarter', 'monthly' or 'trend').",
    ]
    if values:
        lines.append(f"Filter by value: {values}.")
    if topic.time_field is not None:
        label = topic.dimension(topic.time_field).label
        lines.append(
            f"Time filters on {label}: last quarter, this quarter, this year, last year, in 2025, in Q3 2025, "
            "in October 2026, since March 2025, last 6 months, past 90 days, last 12 weeks, year to date."
        )
    lines.append("Ranking: top 5 <dimension> by <measure>, bottom 3 <dimension>, highest <measure>, sorted by <field>.")
    if topic.sample_questions:
        lines.append("Examples: " + " | ".join(topic.sample_questions))
    return "\n".join(lines)


# --- Passes -------------------------------------------------------------------------------------------------------


def _normalise(question: str) -> str:
    text = question.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\s+", " ", text).strip()
    for ordinal, quarter in _ORDINAL_QUARTERS.items():
        text = re.sub(rf"\b{ordinal}\s+quarter\b", quarter, text)
    return text


def _take_time_range(scan: _Scan, today: date) -> tuple[date, date] | None:
    yesterday = today - timedelta(days=1)
    # "from March 2025 to June 2025", "2024 vs 2025": one range from the start of the first to the end of the second.
    range_words = r"to|and|through|until|vs\.?|versus|-"
    if m := scan.find(rf"\b(?:(?:from|between)\s+)?({_PERIOD_RE})\s+(?:{range_words})\s+({_PERIOD_RE})\b"):
        (first_start, first_end), (second_start, second_end) = _period(m[1], today), _period(m[2], today)
        return min(first_start, second_start), max(first_end, second_end)  # "2025 vs 2024" means both years
    if m := scan.find(rf"\b(?:last|past|previous|trailing|prior)\s+({_NUMBER_RE})\s+({_UNITS})\b"):
        return _last_n(_number(m[1]), m[2].rstrip("s"), today)
    if m := scan.find(r"\b(this|current|last|previous|prior|past)\s+(week|month|quarter|year)\b"):
        start, end = _calendar_period(m[2], today)
        return (start, end) if m[1] in ("this", "current") else _calendar_period(m[2], start - timedelta(days=1))
    if m := scan.find(r"\b(year|quarter|month)[\s-]+to[\s-]+date\b|\b([ymq])td\b"):
        unit = m[1] or {"y": "year", "q": "quarter", "m": "month"}[m[2]]
        return _calendar_period(unit, today)[0], yesterday
    if m := scan.find(rf"\bsince\s+({_PERIOD_RE}|{_MONTH_RE})\b"):
        return _period(m[1], today)[0], yesterday
    if m := scan.find(rf"\b(?:in|during|for|of)\s+({_MONTH_RE})\b(?!\s*\d)"):
        return _period(m[1], today)
    if m := scan.find(rf"\b({_PERIOD_RE})\b"):
        return _period(m[1], today)
    if scan.find(r"\byesterday\b"):
        return yesterday, yesterday
    return None


def _take_values(scan: _Scan, topic: Topic) -> dict[str, list[str]]:
    found: list[tuple[int, str, str]] = []  # (position, dimension, value): values are listed as they were asked
    for pattern, dimension, value in _value_patterns(topic):
        while match := scan.find(pattern):
            found.append((match.start(), dimension, value))
    filters: dict[str, list[str]] = {}
    for _, dimension, value in sorted(found):
        values = filters.setdefault(dimension, [])
        if value not in values:
            values.append(value)
    return filters


@lru_cache(maxsize=32)
def _value_patterns(topic: Topic) -> tuple[tuple[re.Pattern[str], str, str], ...]:
    candidates: list[tuple[str, Dimension, str]] = []
    for dimension in topic.dimensions:
        candidates += [(value, dimension, value) for value in dimension.values]
        candidates += [(alias, dimension, value) for alias, value in dimension.value_aliases]
    patterns = []
    for phrase, dimension, value in sorted(candidates, key=lambda c: (-len(c[0]), c[0])):
        # "the West region", "Acme brand": the dimension's own name after a value belongs to the value.
        suffix = "|".join(re.escape(s) for s in sorted(dimension.synonyms, key=len, reverse=True))
        pattern = rf"(?<!\w){re.escape(phrase.lower())}(?:s|es)?(?:\s+(?:{suffix})(?:s|es)?)?(?!\w)"
        patterns.append((re.compile(pattern), dimension.name, value))
    return tuple(patterns)


def _take_fields(scan: _Scan, topic: Topic) -> None:
    phrases = [(p, "measure", m.name) for m in topic.measures for p in (m.label, *m.synonyms)]
    phrases += [(p, "dimension", d.name) for d in topic.dimensions for p in (d.label, *d.synonyms)]
    matches: list[tuple[int, int, int, str, str]] = []  # (-length, start, preference, kind, name)
    for phrase, kind, name in phrases:
        for m in phrase_pattern(phrase).finditer(scan.text):
            wants_dimension = bool(_DIMENSION_CONTEXT.search(scan.original[: m.start()]))
            preference = 0 if (kind == "dimension") == wants_dimension else 1
            matches.append((m.start() - m.end(), m.start(), preference, kind, name))
    for negative_length, start, _, kind, name in sorted(matches):
        end = start - negative_length
        if scan.text[start:end] == scan.original[start:end]:  # none of it used by a longer phrase already
            scan.fields.append((start, kind, name))
            scan.text = scan.text[:start] + " " * (end - start) + scan.text[end:]
    scan.fields.sort()


def _reject_unknown_group_by(scan: _Scan, question: str, topic: Topic) -> None:
    for m in re.finditer(r"\bby\s+(?:the\s+|each\s+)?([a-z][\w'-]*)", scan.original):
        if scan.text[m.start(1)] != " ":  # the word after "by" was not recognised as anything
            reason = f"it groups by {m[1]!r}, which is not a dimension of this topic"
            raise QuestionNotUnderstood(_not_understood(question, topic, reason))


def _ranked_measure(scan: _Scan, ranking: re.Match[str], measures: list[str]) -> str:
    # "top 5 products by orders" ranks by orders; "highest revenue" by the measure after the word; else the first.
    for position, kind, name in scan.fields:
        if kind == "measure" and re.search(r"\bby\s+$", scan.original[:position]):
            return name
    after = [name for position, kind, name in scan.fields if kind == "measure" and position > ranking.start()]
    return after[0] if after else measures[0]


def _explicit_sort(scan: _Scan, sorted_by: re.Match[str], measures: list[str], dims: list[str]) -> Sort:
    target = next((f for f in scan.fields if f[0] > sorted_by.start()), None)
    name = target[2] if target is not None else measures[0]
    if name not in (*measures, *dims):
        name = measures[0]
    rest = scan.original[sorted_by.end() :]
    if re.search(r"\b(asc|ascending|lowest first|smallest first|alphabetical(?:ly)?|a-z)\b", rest):
        descending = False
    elif re.search(r"\b(desc|descending|highest first|largest first)\b", rest):
        descending = True
    else:
        descending = name in measures  # measures read best largest first, dimensions in their natural order
    return Sort(column_name=name, sort_descending=descending)


# --- Dates and helpers ----------------------------------------------------------------------------------------------


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word]


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _calendar_period(unit: str, day: date) -> tuple[date, date]:
    """The whole week (Monday first), month, quarter or year containing `day`."""
    if unit == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    if unit == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    start = _quarter_start(day) if unit == "quarter" else day.replace(day=1)
    return start, _add_months(start, 3 if unit == "quarter" else 1) - timedelta(days=1)


def _last_n(n: int, unit: str, today: date) -> tuple[date, date]:
    if n < 1:
        raise QuestionNotUnderstood(f"Cannot look back {n} {unit}s")
    if unit in ("day", "week"):
        return today - timedelta(days=n * (7 if unit == "week" else 1)), today - timedelta(days=1)
    current_start = _calendar_period(unit, today)[0]
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    return _add_months(current_start, -n * months), current_start - timedelta(days=1)


def _period(text: str, today: date) -> tuple[date, date]:
    """The dates of one named period: "2025", "q3 2025", "2025 q3", "march 2025", or "march" (latest started)."""
    text = text.strip()
    if m := re.fullmatch(r"q([1-4])\s*(?:of\s+)?(\d{4})|(\d{4})\s*-?\s*q([1-4])", text):
        quarter, year = (int(m[1]), int(m[2])) if m[1] else (int(m[4]), int(m[3]))
        return _calendar_period("quarter", date(year, 3 * quarter - 2, 1))
    if m := re.fullmatch(rf"({_MONTH_RE})(?:\s+(?:of\s+)?(\d{{4}}))?", text):
        month = _MONTHS[m[1]]
        year = int(m[2]) if m[2] else (today.year if date(today.year, month, 1) <= today else today.year - 1)
        return _calendar_period("month", date(year, month, 1))
    return _calendar_period("year", date(int(text), 1, 1))


def _describe_values(dimension: Dimension) -> str:
    if len(dimension.values) > 30:
        return f"{dimension.label} ({len(dimension.values)} names, e.g. {', '.join(dimension.values[:3])})"
    return f"{dimension.label} ({', '.join(dimension.values)})"


def _not_understood(question: str, topic: Topic, reason: str) -> str:
    return f"Could not turn {question!r} into a query: {reason}.\n{describe_capabilities(topic)}"
