"""The documents the editor opens for a run: the compare document shows where outputs differ."""

from __future__ import annotations

from prompt_lsp.server.evaluate_text import word_diff


def test_word_diff_marks_the_change_anywhere_in_a_long_output():
    before = "The council met on Tuesday. " * 10 + "It approved the budget of 3 million."
    after = "The council met on Tuesday. " * 10 + "It rejected the budget of 3 million."
    diff = word_diff(before, after)
    assert "[-approved-]{+rejected+}" in diff
    # nothing is cut: the whole current output is there, the removed word marked
    assert diff.replace("[-approved-]", "").replace("{+rejected+}", "rejected") == after


def test_word_diff_of_equal_and_of_empty_outputs():
    assert word_diff("same words here", "same words here") == "same words here"
    assert word_diff("", "new text") == "{+new text+}"
    assert word_diff("old text", "") == "[-old text-]"
