"""The console agent behind `omni-bridge chat` and `omni-bridge ask`, loaded only when one of them runs.

`commands` (what a typed line means), `render` (the Rich console, numbers, the provenance line), `tables`
(the one result table), `charts` (bars, braille lines), `markdown` (an answer's Markdown), `turns` (a stored
conversation as questions and answers), `prompt` (prompt_toolkit input), `view` (one answer's events drawn
on a terminal or a pipe), `session` (the bridge, user, engine and conversation of one
console), `loop` (the event loop in a thread, so Ctrl-C stops an answer cleanly), and the two ways to use
them: `chat` (interactive, or line by line through a pipe) and `ask` (one question, or one JSON object).
"""
