"""YAML syntax errors told as a person needs them: where the construct began, where it broke.

PyYAML reports where it *noticed* a problem, which for an unclosed ``[``, ``{`` or quote is often
lines later than the mistake. Its ``context_mark`` names where the construct began when it knows;
where it does not (a tab or a stray ``:`` inside an open bracket, a quote that closes only at the
next quoted value), the text's tokens are scanned to find the opener. Bad indentation is told as
the indentation found against the levels above it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from keypolicy.policy.errors import Issue, Location

__all__ = ["yaml_syntax_issue"]

_CLOSERS = {"[": "]", "{": "}"}
_WHAT = {"[": "list", "{": "mapping"}
_QUOTES = {'"': "double quote", "'": "single quote"}
_LINES = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_KEY_AFTER_DASH = re.compile(r"[^#'\"]*?:(\s|$)")
_FLOW_CONTEXTS = ("while parsing a flow sequence", "while parsing a flow mapping")
_UNCLOSED_QUOTE = {
    "found unexpected end of stream": "the file ends inside it",
    "found unexpected document separator": "a '---' line is inside it",
}
_TAB = "found character '\\t' that cannot start any token"
_CONTEXTS = {
    "while parsing a block mapping": "in the mapping",
    "while parsing a block collection": "in the list",
    "while parsing a flow node": "in the value",
    "while parsing a block node": "in the value",
    "while scanning a double-quoted scalar": "in the double-quoted text",
    "while scanning a plain scalar": "in the value",
    "while scanning a simple key": "in the key",
}


@dataclass
class _Opener:
    """A ``[`` or ``{`` in the text and, if the scan saw one, the bracket that closed it."""

    char: str
    mark: yaml.Mark
    close_index: int | None = None
    matched: bool = False


@dataclass
class _Scan:
    tokens: list[yaml.Token]
    openers: list[_Opener]
    complete: bool

    def open_at(self, index: int) -> _Opener | None:
        """The innermost bracket opened before ``index`` and not closed before it."""
        inner = None
        for op in self.openers:
            if op.mark.index >= index:
                break
            if op.close_index is None or op.close_index >= index:
                inner = op
        return inner


def _scan(text: str) -> _Scan:
    # Tabs become spaces (same length, so every index holds) so that a tab does not end the
    # scan before the brackets after it are seen; the scan stops at any other scanner error.
    tokens: list[yaml.Token] = []
    openers: list[_Opener] = []
    stack: list[_Opener] = []
    complete = True
    try:
        for token in yaml.scan(text.replace("\t", " "), Loader=yaml.SafeLoader):
            tokens.append(token)
            if isinstance(token, yaml.FlowSequenceStartToken | yaml.FlowMappingStartToken):
                char = "[" if isinstance(token, yaml.FlowSequenceStartToken) else "{"
                opener = _Opener(char, token.start_mark)
                openers.append(opener)
                stack.append(opener)
            elif isinstance(token, yaml.FlowSequenceEndToken | yaml.FlowMappingEndToken) and stack:
                opener = stack.pop()
                opener.close_index = token.start_mark.index
                closer = "]" if isinstance(token, yaml.FlowSequenceEndToken) else "}"
                opener.matched = closer == _CLOSERS[opener.char]
    except yaml.YAMLError:
        complete = False
    return _Scan(tokens, openers, complete)


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _problem(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or exc.context or "invalid YAML"
    if problem == _TAB:
        return "a tab, which YAML does not allow there"
    return (
        problem.replace("but got '<stream end>'", "but the file ended")
        .replace("but found '<stream end>'", "but the file ended")
        .replace("'<scalar>'", "a value")
    )


def _spaces(n: int) -> str:
    return f"{n} space{'s' if n != 1 else ''}"


def yaml_syntax_issue(text: str, name: str, exc: yaml.MarkedYAMLError) -> Issue:
    """One issue for a YAML syntax error in ``text`` (read from ``name``)."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return Issue(None, "", f"{name}: YAML syntax: {exc.problem or exc}")
    err = _Error(text, name, exc, mark)
    for explain in (
        _unclosed_quote,
        _key_without_colon,
        _bracket,
        _quote_closed_late,
        _tab,
        _indentation,
    ):
        issue = explain(err)
        if issue is not None:
            return issue
    return _as_noticed(err)


@dataclass
class _Error:
    """A YAML error and what is known around it."""

    text: str
    name: str
    exc: yaml.MarkedYAMLError
    mark: yaml.Mark

    def __post_init__(self) -> None:
        self.scan = _scan(self.text)
        self.lines = _LINES.split(self.text)
        line = self.lines[self.mark.line] if self.mark.line < len(self.lines) else ""
        self.line = line
        self.indent = len(line) - len(line.lstrip(" "))
        self.where = Location(self.name, self.mark.line + 1, self.mark.column + 1)
        self.noticed = f"noticed at {_at(self.mark)}: {_problem(self.exc)}"
        context = self.exc.context_mark
        self.opener: _Opener | None = None
        if context is not None and self.exc.context in _FLOW_CONTEXTS:
            ops = self.scan.openers
            self.opener = next((op for op in ops if op.mark.index == context.index), None)
        if self.opener is None:  # else the innermost bracket still open where it was noticed
            self.opener = self.scan.open_at(self.mark.index)

    def opened_here(self, opened: yaml.Mark, message: str, hint: str) -> Issue:
        where = Location(self.name, opened.line + 1, opened.column + 1)
        return Issue(where, "", f"YAML syntax: {message}", hint)

    def inside(self) -> str:
        op = self.opener
        return f"inside the '{op.char}' opened at {_at(op.mark)}" if op is not None else ""


def _unclosed_quote(err: _Error) -> Issue | None:
    """A quoted value that runs to the end of the file (or into a '---')."""
    context = err.exc.context_mark
    why = _UNCLOSED_QUOTE.get(err.exc.problem or "")
    if context is None or err.exc.context != "while scanning a quoted scalar" or why is None:
        return None
    quote = err.text[context.index : context.index + 1]
    return err.opened_here(
        context,
        f"the {_QUOTES.get(quote, quote)} opened here is never closed",
        f"noticed at {_at(err.mark)}: {why}; close it with {quote} where the text ends",
    )


def _key_without_colon(err: _Error) -> Issue | None:
    """A key that PyYAML began to read and found no ':' after (it looks no further than a line)."""
    context = err.exc.context_mark
    if context is None or err.exc.context != "while scanning a simple key":
        return None
    hint = f"noticed at {_at(err.mark)}; write 'key: value', or 'key:' above an indented block"
    return err.opened_here(context, "this key has no ':' after it", hint)


def _bracket(err: _Error) -> Issue | None:
    """A '[' or '{' never closed; or, closed, one whose items lack a ','."""
    op = err.opener
    if op is None:
        char = err.text[err.mark.index : err.mark.index + 1]
        if char not in ("]", "}"):
            return None
        opener = "[" if char == "]" else "{"
        what = f"this '{char}' closes no '{opener}'"
        return Issue(err.where, "", f"YAML syntax: {what}", f"remove it, or add the '{opener}'")
    if not op.matched and (op.close_index is not None or err.scan.complete):
        return err.opened_here(
            op.mark,
            f"the '{op.char}' opened here is never closed",
            f"{err.noticed}; close it with '{_CLOSERS[op.char]}' where the {_WHAT[op.char]} ends",
        )
    if err.exc.context in _FLOW_CONTEXTS:
        hint = f"{err.inside()}; separate its items with ','"
        return Issue(err.where, "", f"YAML syntax: {_problem(err.exc)}", hint)
    return None


def _quote_closed_late(err: _Error) -> Issue | None:
    """A quoted value that spans lines and closes just before the problem: a quote left open."""
    quoted = _quote_closing_before(err.scan.tokens, err.mark)
    if quoted is None:
        return None
    quote = err.text[quoted.start_mark.index : quoted.start_mark.index + 1]
    end = quoted.end_mark
    return err.opened_here(
        quoted.start_mark,
        f"the {_QUOTES.get(quote, quote)} opened here is closed only at line {end.line + 1}, "
        f"column {end.column}",
        f"{err.noticed}; close it with {quote} where the text ends",
    )


def _tab(err: _Error) -> Issue | None:
    if err.exc.problem != _TAB:
        return None
    if err.line[: err.mark.column].strip(" \t") == "":
        what = "a tab indents this line"
        hint = "YAML indents with spaces only; replace the tab with spaces"
    else:
        what, hint = "a tab cannot stand here", "use spaces instead of the tab"
    return Issue(err.where, "", f"YAML syntax: {what}", hint)


def _indentation(err: _Error) -> Issue | None:
    """A line indented to no level above it, or deeper than its key (so read as a value)."""
    problem, mark, indent = err.exc.problem or "", err.mark, err.indent
    levels = _levels_above(err.lines, mark.line)
    start = Location(err.name, mark.line + 1, indent + 1)
    belongs = f"indent it like the keys it belongs with: {_list_levels(levels)}"
    if (
        problem.startswith("expected <block end>")
        and mark.column == indent
        and indent not in (level for level, _ in levels)
    ):
        what = f"this line is indented {_spaces(indent)}, which lines up with nothing above it"
        return Issue(start, "", f"YAML syntax: {what}", belongs)
    value = _plain_value_before(err.scan.tokens, mark)
    if problem != "mapping values are not allowed here" or value is None:
        return None
    begun = value.start_mark
    if begun.line < mark.line:
        first = err.lines[begun.line]
        if first[: begun.column].strip(" -") == "":  # the value is all its line has: no ': '
            what = f"this line has no ': ', so line {mark.line + 1} reads as more of its text"
            hint = f"{err.noticed}; if it is a key, write 'key: value'"
            return err.opened_here(begun, what, hint)
        if indent > len(first) - len(first.lstrip(" ")):
            what = (
                f"this line is indented {_spaces(indent)}, deeper than the key above it, "
                f"so it reads as more of the value begun at {_at(begun)}"
            )
            return Issue(start, "", f"YAML syntax: {what}", f"a key cannot start there; {belongs}")
        return None
    hint = f"quote the value begun at {_at(begun)}"
    return Issue(err.where, "", "YAML syntax: ': ' cannot stand inside a value", hint)


def _as_noticed(err: _Error) -> Issue:
    """PyYAML's own words, with where its construct began."""
    exc, context = err.exc, err.exc.context_mark
    hints = []
    if context is not None and context.index != err.mark.index and exc.context:
        hints.append(f"{_CONTEXTS.get(exc.context, exc.context)} begun at {_at(context)}")
    if err.opener is not None:
        hints.append(err.inside())
    hints.append("check indentation and quoting here")
    return Issue(err.where, "", f"YAML syntax: {_problem(exc)}", "; ".join(hints))


def _before(tokens: list[yaml.Token], mark: yaml.Mark) -> list[yaml.Token]:
    return [t for t in tokens if t.start_mark.index < mark.index]


def _quote_closing_before(tokens: list[yaml.Token], mark: yaml.Mark) -> yaml.ScalarToken | None:
    """The quoted value, begun on an earlier line, that closes on ``mark``'s line before it."""
    for token in reversed(_before(tokens, mark)):
        if isinstance(token, yaml.ScalarToken) and token.style in ("'", '"'):
            end = token.end_mark
            if token.start_mark.line < end.line == mark.line and end.index <= mark.index:
                return token
            return None
    return None


def _plain_value_before(tokens: list[yaml.Token], mark: yaml.Mark) -> yaml.ScalarToken | None:
    before = _before(tokens, mark)
    last = before[-1] if before else None
    if isinstance(last, yaml.ScalarToken) and last.plain:
        return last
    return None


def _levels_above(lines: list[str], row: int) -> list[tuple[int, int]]:
    """The indentation levels open above line ``row`` (0-based): (spaces, 1-based line)."""
    levels: list[tuple[int, int]] = []
    for number in range(row - 1, -1, -1):
        text = lines[number]
        body = text.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        column = len(text) - len(body)
        found = [column]
        while body.startswith("- "):  # a list item: a key after the dash is a level too
            rest = body[2:].lstrip(" ")
            column += len(body) - len(rest)
            body = rest
            if _KEY_AFTER_DASH.match(body):
                found.append(column)
        for level in sorted(found, reverse=True):
            if not levels or level < levels[-1][0]:
                levels.append((level, number + 1))
        if levels and levels[-1][0] == 0:
            break
    return levels


def _list_levels(levels: list[tuple[int, int]]) -> str:
    """``4 spaces as at line 3, or 0 as at line 2``."""
    parts = [
        f"{_spaces(level) if i == 0 else level} as at line {line}"
        for i, (level, line) in enumerate(levels)
    ]
    if len(parts) <= 1:
        return "".join(parts) or "0 spaces"
    return ", ".join(parts[:-1]) + ", or " + parts[-1]
