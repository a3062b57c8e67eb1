"""Dotprompt (Handlebars) files read as Dotprompt reads them: recognised, analysed, checked and
rendered by dotpromptz; Dotprompt's own spec suite; the `.prompt` files of google/dotprompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_suites import DATA, dotprompt_results

from prompt_lsp.checks import check_document
from prompt_lsp.checks.findings import Severity
from prompt_lsp.format import parse
from prompt_lsp.format.formats_render import PartialFiles, render_dotprompt
from prompt_lsp.format.language import Dialect, TemplateLanguage
from prompt_lsp.format.render import RenderError, render_messages

GOOGLE_STYLE = """\
---
model: googleai/gemini-2.5-flash
config:
  temperature: 0.3
  maxOutputTokens: 256
input:
  schema:
    topic: string, what to write about
    tags(array, a few keywords): string
    tone?(enum, how it sounds): [FORMAL, CASUAL]
    author(object):
      name: string
    (*): string
output:
  format: json
  schema:
    title: string
---
{{role "system"}}
You write short posts. {{! a comment }}
{{role "user"}}
Write about {{topic}}{{#if tone}} in a {{tone}} tone{{/if}}.
{{#each tags as |tag i|}}- {{tag}} ({{@index}}, {{i}}) for {{@root.author.name}}
{{/each}}
{{#with author}}By {{name}}.{{/with}}
{{json author}}
{{#ifEquals tone "FORMAL"}}Be formal.{{else}}Be relaxed.{{/ifEquals}}
{{history}}
"""


def _errors(doc, path: Path | None = None) -> list:
    return [f for f in check_document(doc, None, path) if f.severity is Severity.ERROR]


def test_a_dotprompt_file_as_google_writes_it_is_recognised_without_any_key() -> None:
    doc = parse(GOOGLE_STYLE, path="post.prompt")
    assert doc.template_format.dialect is Dialect.DOTPROMPT
    assert doc.template_format.language is TemplateLanguage.HANDLEBARS


@pytest.mark.parametrize(
    "body",
    ["{{#if x}}a{{/if}}", '{{role "user"}}hi', "{{> header}}", "{{! note }}", "{{json x}}"],
)
def test_each_handlebars_construct_alone_decides_the_language(body: str) -> None:
    assert parse(body).template_format.language is TemplateLanguage.HANDLEBARS


def test_dotprompt_front_matter_decides_a_body_valid_in_both() -> None:
    text = "---\noutput:\n  format: text\n---\nHello {{name}}\n"
    assert parse(text).template_format.dialect is Dialect.DOTPROMPT
    assert parse("Hello {{ name }}\n").template_format.dialect is Dialect.PROMPT


def test_jinja_syntax_keeps_our_own_format() -> None:
    doc = parse("{% for x in xs %}{{ x | upper }}{% endfor %}")
    assert doc.template_format.language is TemplateLanguage.JINJA


def test_the_template_key_and_the_setting_override_the_guess() -> None:
    handlebars_body = "{{#if x}}a{{/if}}"
    as_jinja = parse(f"---\ntemplate: jinja2\n---\n{handlebars_body}")
    assert as_jinja.template_format.language is TemplateLanguage.JINJA
    assert "template:" in as_jinja.template_format.reason
    by_setting = parse("Hello {{name}}", language_setting="handlebars")
    assert by_setting.template_format.dialect is Dialect.DOTPROMPT
    # the file's own key wins over the workspace setting
    keyed = parse("---\ntemplate: jinja2\n---\nHello {{name}}", language_setting="handlebars")
    assert keyed.template_format.language is TemplateLanguage.JINJA


def test_helpers_and_data_variables_give_no_false_errors() -> None:
    doc = parse(GOOGLE_STYLE, path="post.prompt")
    assert _errors(doc) == []
    kinds = {(u.kind, u.name) for u in doc.names}
    assert {("helper", h) for h in ("role", "if", "each", "with", "json", "ifEquals")} <= kinds
    assert ("variable", "topic") in kinds and ("variable", "tags") in kinds
    # inside {{#with author}} `name` is the author's field; {{@root.author.name}} is the input
    assert ("local", "name") in kinds and ("local", "tag") in kinds
    assert [m.role for m in doc.messages] == ["system", "user"]


def test_a_variable_used_but_not_declared_is_still_reported() -> None:
    text = "---\ninput:\n  schema:\n    topic: string\n---\n{{#if topic}}{{subject}}{{/if}}\n"
    findings = [f for f in _errors(parse(text)) if f.code == "undefined-variable"]
    assert [(f.message, f.range.start.line, f.range.start.character) for f in findings] == [
        ("'subject' is used but not declared in input.schema.", 5, 15)
    ]


@pytest.mark.parametrize(
    ("body", "line", "character", "words"),
    [
        ("Hi\n  {{#if ready}}\nyes\n", 6, 2, "`{{#if}}` is never closed"),
        ("Hi\n{{#each xs}}{{/if}}\n", 6, 12, "`{{/if}}` closes a block that is not open"),
        ("Hi {{name}}\nand {{ oops\n", 6, 4, "`{{` is never closed"),
        ("{{else}}\n", 5, 0, "`{{else}}` outside a block"),
    ],
)
def test_handlebars_syntax_errors_are_reported_where_they_are(
    body: str, line: int, character: int, words: str
) -> None:
    text = f"---\ntemplate: handlebars\ninput:\n  schema: {{}}\n---\n{body}"
    doc = parse(text)
    syntax = [f for f in _errors(doc) if f.code == "template-syntax"]
    assert len(syntax) == 1, syntax
    assert (syntax[0].range.start.line, syntax[0].range.start.character) == (line, character)
    assert words in syntax[0].message


def test_render_uses_dotpromptz_roles_and_input_defaults(tmp_path: Path) -> None:
    path = tmp_path / "post.prompt"
    text = (
        "---\ninput:\n  default:\n    who: world\n---\n"
        '{{role "system"}}Be brief.\n{{role "model"}}Sure.\n{{role "user"}}Hello {{who}}, {{x}}!'
    )
    path.write_text(text)
    doc = parse(text, path=str(path))
    messages = render_messages(doc, {"x": "<b>"})
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief.\n"),
        ("assistant", "Sure.\n"),  # Dotprompt's `model` is litellm's assistant
        ("user", "Hello world, <b>!"),  # no HTML escaping, as Dotprompt
    ]


def test_media_parts_reach_the_model_call() -> None:
    doc = parse('{{role "user"}}Describe {{media url=photo}}', path="m.prompt")
    [message] = render_messages(doc, {"photo": "https://example.com/a.png"})
    assert message.media == ("https://example.com/a.png",)
    assert message.as_dict()["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png"},
    }


def test_a_render_error_is_a_clear_error() -> None:
    doc = parse('---\ntemplate: handlebars\n---\n{{#each items}}{{/each}}{{#bad "x"}}')
    with pytest.raises(RenderError):
        render_messages(doc, {})


def test_partials_resolve_beside_the_file_render_and_go_to_definition(tmp_path: Path) -> None:
    (tmp_path / "_greeting.prompt").write_text("Hello {{name}}!")
    prompt = tmp_path / "main.prompt"
    text = '{{role "user"}}{{> greeting name=who}} Then {{> missing}}'
    prompt.write_text(text)
    doc = parse(text, path=str(prompt))
    assert [u.name for u in doc.partials] == ["greeting", "missing"]
    assert PartialFiles(str(prompt)).path("greeting") == (tmp_path / "_greeting.prompt")
    findings = [f for f in check_document(doc, None, prompt) if f.code.startswith("partial")]
    assert [(f.code, f.range.start.character) for f in findings] == [
        ("partial-not-found", text.index("missing"))
    ]
    (tmp_path / "_missing.prompt").write_text("(more)")
    [message] = render_messages(parse(text, path=str(prompt)), {"who": "Ada"})
    assert message.content == "Hello Ada! Then (more)"


def test_partials_outside_the_folder_are_never_read(tmp_path: Path) -> None:
    files = PartialFiles(str(tmp_path / "p.prompt"))
    assert files.path("../secret") is None and files.path("/etc/passwd") is None


def test_circular_partials_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "_a.prompt").write_text("A {{> b}}")
    (tmp_path / "_b.prompt").write_text("B {{> a}}")
    prompt = tmp_path / "main.prompt"
    prompt.write_text("{{> a}}")
    doc = parse("{{> a}}", path=str(prompt))
    [cycle] = [f for f in check_document(doc, None, prompt) if f.code == "partial-cycle"]
    assert cycle.severity is Severity.ERROR and "a → b → a" in cycle.message
    with pytest.raises(RenderError, match="(?i)cycle|circular"):
        render_messages(doc, {})


def test_dotprompts_spec_suite_renders_identically() -> None:
    """Dotprompt's spec suite (`spec/**/*.yaml`), every test that expects messages: roles, text
    and media as our render call gives them. With the language named (workspace setting or
    `template: handlebars`) every template is Dotprompt; without, a template that is valid
    Jinja too (`Hello {{name}}!`) is read as our own format."""
    named = dotprompt_results("handlebars")
    passed = sum(o.passed for o in named)
    auto = dotprompt_results(None)
    auto_passed = sum(o.passed for o in auto)
    print(
        f"\nDotprompt spec suite: {passed}/{len(named)} with the language named, "
        f"{auto_passed}/{len(auto)} recognised from the template alone"
    )
    assert len(named) >= 100
    failures = [f"{o.name}: {o.detail}" for o in named if not o.passed]
    assert passed / len(named) >= 0.95, failures


DOTPROMPT_FILES = sorted((DATA / "dotprompt" / "prompts").glob("**/*.prompt"))


def _renders_with_dotpromptz(path: Path) -> bool:
    """Whether Dotprompt itself parses and renders the file (with a value for every input)."""
    text = path.read_text(encoding="utf-8")
    doc = parse(text, path=str(path))
    values = {f.name: "x" for f in doc.schema}
    try:
        render_dotprompt(text, values, partials=PartialFiles(str(path)))
    except Exception:
        return False
    return True


@pytest.mark.parametrize("path", DOTPROMPT_FILES, ids=lambda p: p.name)
def test_google_dotprompt_files_have_no_false_errors(path: Path) -> None:
    """A syntax or schema error is reported exactly when Dotprompt itself cannot render the file
    (the repository has a few files that are broken on purpose, or by mistake)."""
    doc = parse(path.read_text(encoding="utf-8"), path=str(path), bounded=False)
    blocking = [
        f
        for f in check_document(doc, None, path)
        if f.code in ("template-syntax", "yaml-syntax", "invalid-value", "partial-cycle")
        or f.code == "partial-not-found"  # a warning: an application may register it in code
    ]
    assert doc.template_format.dialect is Dialect.DOTPROMPT or not path.name.startswith("valid")
    assert bool(blocking) == (not _renders_with_dotpromptz(path)), blocking
    assert not [f for f in _errors(doc, path) if f.code in ("parse-error", "unknown-key")]


def test_picoschema_in_input_and_output_is_understood() -> None:
    text = (
        "---\ninput:\n  schema:\n    tags(array, keywords): string\n"
        "    tone(enum): [FORMAL, CASUAL]\n    author(object):\n      name: strng\n"
        "    (*): string\noutput:\n  format: json\n  schema:\n    title: string\n"
        "    outline: string[]\n    by: Person\n---\n{{#each tags}}{{this}}{{/each}}{{tone}}{{author.name}}\n"
    )
    doc = parse(text)
    assert [(f.name, f.type) for f in doc.schema] == [
        ("tags", "array"),
        ("tone", "enum"),
        ("author", "object"),
    ]
    errors = [(f.range.start.line, f.message.split(":")[0]) for f in _errors(doc)]
    # a nested field's unknown type and an output field's; `Person` is a registered schema
    assert errors == [
        (6, "Unknown type 'strng' for 'name' in input.schema"),
        (12, "Unknown type 'string[]' for 'outline' in output.schema"),
    ]


def test_the_command_line_renders_a_dotprompt_file_and_takes_the_language(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    samples = Path(__file__).resolve().parent.parent / "samples" / "capital-cities"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "prompt_lsp",
            "render",
            "--json",
            str(samples / "capital-cities.prompt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    system, user = json.loads(run.stdout)
    assert system["role"] == "system" and "capital city" in system["content"]  # the partial
    assert user["content"].lstrip().startswith("Country: France\nCapital: Paris\n")
    plain = tmp_path / "hello.prompt"
    plain.write_text("Hello {{name}}!\n")
    for language, expected in (("handlebars", "Hello !\n"), ("auto", None)):
        run = subprocess.run(
            [sys.executable, "-m", "prompt_lsp", "render", "--json", str(plain)]
            + ["--template-language", language],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if expected is None:  # our own Jinja: a missing variable is an error
            assert run.returncode != 0 and "'name' is undefined" in run.stderr
        else:
            assert json.loads(run.stdout) == [{"role": "user", "content": expected}]


def test_our_own_file_using_dotprompt_config_names_stays_ours() -> None:
    """`maxOutputTokens` is also an alias in our format: role marker lines keep the file ours."""
    text = "---\nconfig:\n  maxOutputTokens: 20\n---\nsystem:\nBe brief.\nuser:\nQ {{ q }}\n"
    doc = parse(text)
    assert doc.template_format.dialect is Dialect.PROMPT
    assert [(m.role, m.content) for m in render_messages(doc, {"q": "1"})] == [
        ("system", "Be brief."),
        ("user", "Q 1"),
    ]


def test_an_edit_that_adds_handlebars_syntax_changes_the_format_and_prose_keeps_it() -> None:
    first = parse("---\nname: t\n---\nHello {{ name }}\nmore text\n")
    assert first.template_format.dialect is Dialect.PROMPT
    typed = parse("---\nname: t\n---\nHello {{ name }}\n{{#if x}}more{{/if}}\n", previous=first)
    assert typed.template_format.dialect is Dialect.DOTPROMPT
    prose = parse("---\nname: t\n---\nHello {{ name }}\n{{#if x}}more{{/if}}\nand\n")
    edited = parse(
        "---\nname: t\n---\nHello {{ name }}\n{{#if x}}more{{/if}}\nand so\n", previous=prose
    )
    assert edited.template_format == prose.template_format
    assert [m.text for m in edited.messages] == ["Hello {{ name }}\n{{#if x}}more{{/if}}\nand so"]
