"""Follow-up suggestions: the model ends its answer with `Follow-ups: a | b | c`; the bridge turns that line
into buttons and keeps it out of the streamed and stored text.
"""

from __future__ import annotations

from omni_bridge.agent.events import ActionButton

__all__ = ["FollowUpFilter", "split_follow_ups"]

MARKER = "Follow-ups:"


def _buttons(line: str) -> list[ActionButton]:
    questions = [q.strip(" -*•\t") for q in line.strip()[len(MARKER) :].split("|")]
    return [
        ActionButton(button_id=f"follow-up-{n}", label=q, prompt=q) for n, q in enumerate(filter(None, questions), 1)
    ][:4]


def split_follow_ups(text: str) -> tuple[str, list[ActionButton]]:
    """The answer without its `Follow-ups:` line(s), and the buttons they held."""
    kept, buttons = [], []
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith(MARKER):
            buttons = _buttons(line)
        else:
            kept.append(line)
    return "".join(kept).rstrip(), buttons


class FollowUpFilter:
    """Passes streamed text through, holding back any line that is (or may become) a `Follow-ups:` line."""

    def __init__(self) -> None:
        self._line = ""  # the held start of the current line
        self._mid_line = False  # part of the current line was shown already: it cannot be the marker line

    def feed(self, text: str) -> str:
        """What of `text` can be shown now."""
        out: list[str] = []
        for piece in text.splitlines(keepends=True):
            if self._mid_line:
                out.append(piece)
            else:
                self._line += piece
                head = self._line.lstrip()
                if head.startswith(MARKER) or (MARKER.startswith(head) and not piece.endswith("\n")):
                    if self._line.endswith("\n"):
                        self._line = ""  # a whole marker line: dropped
                    continue
                out.append(self._line)
                self._line = ""
            self._mid_line = not piece.endswith("\n")
        return "".join(out)

    def flush(self) -> str:
        """The rest, once the stream has ended."""
        line, self._line = self._line, ""
        return "" if line.lstrip().startswith(MARKER) else line
