"""YAML read with line numbers, so every config error can say FILE:LINE.

PyYAML's `safe_load` throws positions away and silently keeps the last of two duplicate keys.
We compose the node tree instead and walk it with `Node`, a thin cursor that remembers where
each value stood and collects problems rather than stopping at the first one: an operator
fixing routes.yaml wants the whole list in one go.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterator
from typing import Any

import yaml

from ivr.errors import Problem, RoutesError


class Source:
    """A YAML file being read, and the problems found in it so far."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def root(self) -> Node:
        try:
            node = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            message = _one_line(exc.problem or str(exc))
            raise RoutesError([Problem(self.path, line, f"not valid YAML: {message}")]) from None
        except yaml.reader.ReaderError as exc:  # a control character or a lone surrogate
            # str(exc) spans two lines and counts characters; an operator needs the line.
            line = _line_at(self.text, exc.position)
            char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
            raise RoutesError(
                [Problem(self.path, line, f"not valid YAML: unacceptable character {char}: {_one_line(exc.reason)}")]
            ) from None
        except yaml.YAMLError as exc:
            raise RoutesError([Problem(self.path, 1, f"not valid YAML: {_one_line(str(exc))}")]) from None
        if node is None:
            raise RoutesError([Problem(self.path, 1, "file is empty")])
        return Node(self, node, "(top level)")

    def raise_if_problems(self) -> None:
        if self.problems:
            raise RoutesError(self.problems)


class Node:
    """A located YAML value. Accessors report a problem and return None on a wrong type."""

    def __init__(self, src: Source, node: yaml.Node, name: str) -> None:
        self.src = src
        self.node = node
        self.name = name

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def problem(self, message: str) -> None:
        self.src.problem(self.line, message)

    # -- containers -------------------------------------------------------------------------
    def mapping(self, allowed: Collection[str] | None = None, required: Collection[str] = ()) -> dict[str, Node] | None:
        if not isinstance(self.node, yaml.MappingNode):
            self.problem(f"{self.name} must be a mapping")
            return None
        out: dict[str, Node] = {}
        for knode, vnode in self.node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else None
            if key is None:
                self.src.problem(knode.start_mark.line + 1, f"{self.name}: keys must be plain strings")
                continue
            if key in out:
                self.src.problem(
                    knode.start_mark.line + 1, f"{self.name}: duplicate key '{key}' (first at line {out[key].line})"
                )
                continue
            if allowed is not None and key not in allowed:
                self.src.problem(
                    knode.start_mark.line + 1,
                    f"{self.name}: unknown key '{key}' (expected one of: {', '.join(sorted(allowed))})",
                )
                continue
            out[key] = Node(self.src, vnode, f"{self.name}.{key}" if self.name != "(top level)" else key)
        for key in sorted(set(required) - out.keys()):
            self.problem(f"{self.name}: missing required key '{key}'")
        return out

    def sequence(self) -> list[Node] | None:
        if not isinstance(self.node, yaml.SequenceNode):
            self.problem(f"{self.name} must be a list")
            return None
        return [Node(self.src, n, f"{self.name}[{i}]") for i, n in enumerate(self.node.value)]

    def items(self) -> Iterator[tuple[str, Node]]:
        mapping = self.mapping()
        yield from (mapping or {}).items()

    # -- scalars ----------------------------------------------------------------------------
    def _scalar(self) -> yaml.ScalarNode | None:
        if not isinstance(self.node, yaml.ScalarNode):
            shape = "list" if isinstance(self.node, yaml.SequenceNode) else "mapping"
            self.problem(f"{self.name} must be a single value, not a {shape}")
            return None
        return self.node

    def string(self, pattern: str | None = None, what: str = "") -> str | None:
        """The value as written. Numbers stay text: 0563 keeps its leading zero, unquoted or not."""
        scalar = self._scalar()
        if scalar is None:
            return None
        value = scalar.value
        if scalar.tag == "tag:yaml.org,2002:null" or value == "":
            self.problem(f"{self.name} must not be empty")
            return None
        if pattern is not None and not re.fullmatch(pattern, value):
            self.problem(f"{self.name} '{value}' is not {what or 'valid'}")
            return None
        return str(value)

    def integer(self, low: int, high: int) -> int | None:
        scalar = self._scalar()
        if scalar is None:
            return None
        value = _construct(scalar)
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(f"{self.name} must be a whole number, got '{scalar.value}'")
            return None
        if not low <= value <= high:
            self.problem(f"{self.name} must be between {low} and {high}, got {value}")
            return None
        return value

    def date(self) -> dt.date | None:
        scalar = self._scalar()
        if scalar is None:
            return None
        # Exactly YYYY-MM-DD. A date-time would silently lose its time of day (a batch goes live
        # at midnight), and Python's fromisoformat also takes 20160731 and 2016-W30-7, which
        # nobody means.
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", scalar.value):
            try:
                return dt.date.fromisoformat(scalar.value)  # quoted or not
            except ValueError:
                pass  # 2016-02-30
        self.problem(f"{self.name} must be a date like 2016-07-31, got '{scalar.value}'")
        return None

    def choice(self, options: tuple[str, ...]) -> str | None:
        value = self.string()
        if value is not None and value not in options:
            self.problem(f"{self.name} must be one of {', '.join(options)}, got '{value}'")
            return None
        return value


def _construct(node: yaml.ScalarNode) -> Any:
    """Resolve a scalar the way safe_load would (int, date, bool, str ...)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError):
        # e.g. 2016-13-01 matches YAML's timestamp pattern but is no date: keep the text
        return node.value
    finally:
        loader.dispose()


# The line breaks YAML counts (and so its marks' line numbers): \r\n, \n, \r, NEL, LS, PS.
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _line_at(text: str, position: int) -> int:
    return len(_LINE_BREAK.findall(text, 0, max(0, position))) + 1


def _one_line(message: str) -> str:
    """A problem is printed as one FILE:LINE: line; library messages may span several."""
    return " ".join(message.split()) or "unreadable"
