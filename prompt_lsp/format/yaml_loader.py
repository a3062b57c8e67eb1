"""A YAML loader for untrusted text: safe tags only, and bounded alias expansion and nesting.

PyYAML composes an alias as a second reference to the anchored node, so a 600-byte
"billion laughs" file is a small graph whose expansion (walking the front matter, rendering
`{{ lol }}`, hashing the metadata) has 10^9 values. `BoundedLoader` counts, while composing,
how many values each node stands for once expanded, and refuses a document past
MAX_EXPANDED_NODES or nested deeper than MAX_DEPTH, with a `yaml.MarkedYAMLError` at the place
(callers already report those as syntax findings).
"""

from __future__ import annotations

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 100


class YAMLLimitError(ComposerError):
    """The YAML stands for too many values once its aliases are expanded, or nests too deep."""


class BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader with the limits in the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}  # id(node) -> values it stands for, expanded
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise YAMLLimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        alias = self.check_event(AliasEvent)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        if alias:
            if id(node) not in self._expanded:  # the anchored node is still being composed
                raise YAMLLimitError(None, None, "an alias refers to itself", node.start_mark)
        else:
            self._count(node)
        return node

    def _count(self, node: Node) -> None:
        """Record how many values `node` stands for, its children (and aliases) expanded."""
        if isinstance(node, SequenceNode):
            children: list[Node] = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            self._expanded[id(node)] = 1
            return
        total = 1 + sum(self._expanded[id(child)] for child in children)
        if total > MAX_EXPANDED_NODES:
            raise YAMLLimitError(
                None,
                None,
                f"its aliases expand to more than {MAX_EXPANDED_NODES:,} values",
                node.start_mark,
            )
        self._expanded[id(node)] = total
