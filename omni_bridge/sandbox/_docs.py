"""`searchOmniDocs` over the sandbox's bundled pages (the `docs/` folder next to this module).

A small keyword index is enough here: a dozen pages, answers are the best-matching paragraphs, and
results must be deterministic for tests. The same pages are served at `/docs/<slug>` and are the
sandbox's own documentation, including the list of behaviours it had to guess.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["DocPage", "DocsIndex"]

_WORD = re.compile(r"[a-z0-9][a-z0-9_-]*")
_STOP_WORDS = (
    "a an and are as at be by can do does for from how i if in is it me my of on or the to what when where "
    "which who why with you your this that there"
)
_STOP = frozenset(_STOP_WORDS.split())


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@dataclass(frozen=True, slots=True)
class DocPage:
    slug: str
    title: str
    body: str

    @property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.body.split("\n\n") if p.strip() and not p.startswith("# ")]


class DocsIndex:
    """The bundled pages, searchable by keywords."""

    def __init__(self, pages: list[DocPage] | None = None) -> None:
        self.pages = pages if pages is not None else _load_pages()
        self._counts = {p.slug: Counter(_terms(p.title + " " + p.title + " " + p.body)) for p in self.pages}

    def page(self, slug: str) -> DocPage | None:
        return next((p for p in self.pages if p.slug == slug), None)

    def search(self, question: str, *, base_url: str, limit: int = 3) -> dict[str, Any]:
        """`{answer, sources[{title, url}]}` like Omni's `/ai/search-omni-docs`."""
        terms = set(_terms(question))
        ranked = sorted(
            ((sum(min(self._counts[p.slug][t], 5) for t in terms), p) for p in self.pages),
            key=lambda item: (-item[0], item[1].slug),
        )
        hits = [p for score, p in ranked if score > 0][:limit]
        if not hits:
            titles = ", ".join(p.title for p in self.pages)
            return {"answer": f"No page matches that question. Pages available: {titles}.", "sources": []}
        best = hits[0]
        paragraphs = sorted(best.paragraphs, key=lambda para: -len(terms.intersection(_terms(para))))[:2]
        root = base_url.rstrip("/")
        return {
            "answer": f"From “{best.title}”:\n\n" + "\n\n".join(paragraphs),
            "sources": [{"title": p.title, "url": f"{root}/docs/{p.slug}"} for p in hits],
        }


def _load_pages() -> list[DocPage]:
    folder = resources.files("omni_bridge.sandbox").joinpath("docs")
    pages = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".md"):
            continue
        text = entry.read_text(encoding="utf-8")
        first = text.splitlines()[0] if text else ""
        title = first[2:].strip() if first.startswith("# ") else entry.name[:-3]
        pages.append(DocPage(slug=entry.name[:-3], title=title, body=text))
    return pages
