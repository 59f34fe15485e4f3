"""Reading tool calls from an answer's text: a table of the shapes real models and servers write."""

from __future__ import annotations

import json

import pytest

from benchpilot_runner.llm.content_calls import MAX_TEXT, ReadCalls, read_calls

TOOLS = ("file_reader", "csv_parser", "report_generator")
A = {"path": "/data/a.csv"}
CALL = json.dumps({"name": "file_reader", "arguments": A})

# (id, text, expected calls as [(name, arguments)])
READ = [
    ("bare", CALL, [("file_reader", A)]),
    ("bare with surrounding spaces", f"\n\n  {CALL}  \n", [("file_reader", A)]),
    ("json fence", f"```json\n{CALL}\n```", [("file_reader", A)]),
    ("unlabelled fence", f"```\n{CALL}\n```", [("file_reader", A)]),
    ("fence amid prose", f"First I read the file.\n```json\n{CALL}\n```\nThen I will parse it.", [("file_reader", A)]),
    ("bare call then prose", f"{CALL}\nThis reads the input file.", [("file_reader", A)]),
    ("prose then bare call", f"Let me start by reading the file: {CALL}", [("file_reader", A)]),
    ("one-line fence", f"```json {CALL}```", [("file_reader", A)]),
    ("hermes tags", f"<tool_call>\n{CALL}\n</tool_call>", [("file_reader", A)]),
    ("hermes tag never closed", f"<tool_call>\n{CALL}", [("file_reader", A)]),
    ("two hermes tags", f"<tool_call>{CALL}</tool_call>\n<tool_call>"
                        '{"name": "csv_parser", "arguments": {"delimiter": ","}}</tool_call>',
     [("file_reader", A), ("csv_parser", {"delimiter": ","})]),
    ("hermes tag with reasoning outside", f"I need the data first.\n<tool_call>\n{CALL}\n</tool_call>",
     [("file_reader", A)]),
    ("two json lines", CALL + '\n{"name": "csv_parser", "arguments": {}}', [("file_reader", A), ("csv_parser", {})]),
    ("two fences", f"```json\n{CALL}\n```\nand\n```json\n" + '{"name": "csv_parser", "arguments": {}}\n```',
     [("file_reader", A), ("csv_parser", {})]),
    ("a list", f'[{CALL}, {{"name": "csv_parser", "arguments": {{}}}}]', [("file_reader", A), ("csv_parser", {})]),
    ("tool/parameters", '{"tool": "file_reader", "parameters": {"path": "/data/a.csv"}}', [("file_reader", A)]),
    ("function/args", '{"function": "file_reader", "args": {"path": "/data/a.csv"}}', [("file_reader", A)]),
    ("tool_name/input", '{"tool_name": "file_reader", "input": {"path": "/data/a.csv"}}', [("file_reader", A)]),
    ("BFCL list of function/parameters",
     '```json\n[{"function":"file_reader","parameters":{"path":"/data/a.csv"}},'
     '{"function":"csv_parser","parameters":{"delimiter":";"}}]\n```',
     [("file_reader", A), ("csv_parser", {"delimiter": ";"})]),
    ("openai shape, arguments as a string",
     json.dumps({"type": "function", "function": {"name": "file_reader", "arguments": json.dumps(A)}}),
     [("file_reader", A)]),
    ("openai tool_calls pasted",
     json.dumps({"tool_calls": [{"id": "c1", "type": "function",
                                 "function": {"name": "file_reader", "arguments": json.dumps(A)}}]}),
     [("file_reader", A)]),
    ("arguments as a JSON string", '{"name": "file_reader", "arguments": "{\\"path\\": \\"/data/a.csv\\"}"}',
     [("file_reader", A)]),
    ("no arguments", '{"name": "report_generator"}', [("report_generator", {})]),
    ("null arguments", '{"name": "report_generator", "arguments": null}', [("report_generator", {})]),
    ("id and type beside the call", '{"id": "x1", "type": "function", "name": "csv_parser", "arguments": {}}',
     [("csv_parser", {})]),
    ("flattened arguments of an offered tool", '{"name": "file_reader", "path": "/data/a.csv"}',
     [("file_reader", A)]),
    ("{tool: arguments}", '{"file_reader": {"path": "/data/a.csv"}}', [("file_reader", A)]),
    ("functions. prefix", '{"name": "functions.file_reader", "arguments": {"path": "/data/a.csv"}}',
     [("file_reader", A)]),
    ("trailing commas", '{"name": "file_reader", "arguments": {"path": "/data/a.csv",},}', [("file_reader", A)]),
    ("python literal", "{'name': 'csv_parser', 'arguments': {'has_header': True, 'delimiter': None}}",
     [("csv_parser", {"has_header": True, "delimiter": None})]),
    ("apostrophes in prose and in a value", "I can't guess, so: " + json.dumps(
        {"name": "file_reader", "arguments": {"path": "/data/bob's.csv"}}),
     [("file_reader", {"path": "/data/bob's.csv"})]),
    ("braces inside a string value", '{"name": "file_reader", "arguments": {"path": "/data/{x}]"}}',
     [("file_reader", {"path": "/data/{x}]"})]),
    ("nested argument values", '{"name": "csv_parser", "arguments": {"columns": ["a", "b"], "opts": {"k": 1}}}',
     [("csv_parser", {"columns": ["a", "b"], "opts": {"k": 1}})]),
    ("an invented tool is still a call", '{"name": "teleport", "arguments": {"to": "mars"}}',
     [("teleport", {"to": "mars"})]),
    ("pythonic call", "file_reader(path='/data/a.csv')", [("file_reader", A)]),
    ("pythonic list in a fence", "```python\n[file_reader(path='/data/a.csv'), csv_parser(delimiter=',')]\n```",
     [("file_reader", A), ("csv_parser", {"delimiter": ","})]),
    ("llama 3.1 function tag", '<function=file_reader>{"path": "/data/a.csv"}</function>', [("file_reader", A)]),
    ("two llama 3.1 function tags", '<function=file_reader>{"path": "/data/a.csv"}</function>\n'
                                    "<function=report_generator>{}</function>",
     [("file_reader", A), ("report_generator", {})]),
    ("mistral [TOOL_CALLS] prefix", f"[TOOL_CALLS] [{CALL}]", [("file_reader", A)]),
    ("llama 3 type/name/parameters",
     '{"type": "function", "name": "file_reader", "parameters": {"path": "/data/a.csv"}}', [("file_reader", A)]),
    ("a numbered list of pythonic calls, as the suggested workflow is shown",
     "1. file_reader(path='/data/a.csv')\n2. json_data = json.loads(file_reader(path))\n3. print(json_data)",
     [("file_reader", A)]),
    ("pythonic lines with markers amid prose",
     "Plan:\n- file_reader(path='/data/a.csv')\n- csv_parser(delimiter=',');\nThat is all.",
     [("file_reader", A), ("csv_parser", {"delimiter": ","})]),
    ("unreadable fence then a bare call outside it is not mixed", f"```text\nsee below\n```\n{CALL}",
     [("file_reader", A)]),
    ("a call after a prose fence", f"```\nplan: read, parse\n```\n{CALL}", [("file_reader", A)]),
]


@pytest.mark.parametrize("text,expected", [pytest.param(t, e, id=i) for i, t, e in READ])
def test_reads_every_common_shape(text, expected):
    got = read_calls(text, TOOLS)
    assert [(c.name, c.arguments) for c in got.calls] == expected
    assert got.attempted and got.unreadable is None


# (id, text): the answer tried to call a tool and nothing can be read; the reason names the fault
UNREADABLE = [
    ("missing comma", '```json\n{"name": "file_reader" "arguments": {"path": "/x"}}\n```', "malformed JSON"),
    ("cut off mid-call", '{"name": "file_reader", "arguments": {"path": "/da', "unterminated JSON"),
    ("cut off in a fence", '```json\n{"name": "file_reader", "arguments": {', "unterminated JSON"),
    ("cut off in a tag", '<tool_call>\n{"name": "file_reader", "arg', "unterminated JSON"),
    ("a tag with prose inside", "<tool_call>read the file please</tool_call>", "names no tool"),
    ("a name that is not a string", '{"name": 42, "arguments": {}}', "names no tool"),
    ("an unknown name with stray keys", '{"name": "teleport", "destination": "mars"}', "names no tool"),
    ("a bad value", '{"name": "file_reader", "arguments": {"path": undefined}}', "malformed JSON"),
    ("llama 3.1 function tag without an object", "<function=file_reader>/data/a.csv</function>", "no JSON object"),
    ("pythonic with positional arguments", "file_reader('/data/a.csv')", "positional"),
    ("pythonic with a computed value", "file_reader(path=os.getcwd())", "not a literal"),
]


@pytest.mark.parametrize("text,why", [pytest.param(t, w, id=i) for i, t, w in UNREADABLE])
def test_an_attempt_that_cannot_be_read_says_why(text, why):
    got = read_calls(text, TOOLS)
    assert got.calls == () and got.attempted
    assert got.unreadable is not None and why in got.unreadable


# (id, text): a final answer, not a call
NOT_CALLS = [
    ("empty", ""),
    ("none", None),
    ("prose", "The report is written to /data/report.html. All steps are done."),
    ("brackets in prose", "I read {the file} and [parsed] it; see [the docs](http://x)."),
    ("a json result that names no tool", '{"status": "done", "rows": 10}'),
    ("a list of numbers", "The counts were [1, 2, 3]."),
    ("code in a fence", "```python\nprint('done')\n```"),
    ("pythonic call of a tool not offered", "print(path='/x')"),
    ("a tool named in a sentence", "I called file_reader(path='/data/a.csv') and it worked."),
    ("a numbered line with prose after the call", "1. file_reader(path='/data/a.csv') reads the input"),
    ("pythonic without offered tools", "file_reader(path='/x')"),
]


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in NOT_CALLS])
def test_a_final_answer_is_not_a_call(text):
    tools = () if text == "file_reader(path='/x')" else TOOLS
    got = read_calls(text, tools)
    assert got.calls == () and not got.attempted and got.unreadable is None


def test_a_readable_call_wins_over_a_broken_one_beside_it():
    text = f"```json\n{CALL}\n```\n```json\n{{\"name\": \"csv_parser\" \"arguments\": {{}}}}\n```"
    got = read_calls(text, TOOLS)
    assert [c.name for c in got.calls] == ["file_reader"]
    assert got.unreadable is None and "malformed" in got.problem


def test_arguments_that_are_not_an_object_are_passed_on_as_written():
    """The tool refuses them as it refuses a native call with bad arguments: a wrong call, not unreadable."""
    got = read_calls('{"name": "file_reader", "arguments": "read /data/a.csv"}', TOOLS)
    assert [(c.name, c.arguments_json()) for c in got.calls] == [("file_reader", "read /data/a.csv")]
    got = read_calls('{"name": "file_reader", "arguments": ["/data/a.csv"]}', TOOLS)
    assert got.calls[0].arguments == ["/data/a.csv"] and got.calls[0].arguments_json() == '["/data/a.csv"]'


def test_arguments_json_is_what_a_native_call_would_carry():
    got = read_calls(CALL, TOOLS)
    assert json.loads(got.calls[0].arguments_json()) == A


def test_pathological_text_is_bounded():
    """Unbalanced brackets by the thousand, a huge answer: read in bounded time, nothing invented."""
    assert read_calls("{[" * 50_000, TOOLS).calls == ()
    assert read_calls("[" * 100 + "]" * 100, TOOLS).calls == ()
    assert read_calls("{" * 30_000 + "]" * 30_000, TOOLS).calls == (), "stray closers"
    assert read_calls("[a " * 20_000 + "]" * 20_000, TOOLS).calls == (), "prose nested in brackets"
    assert read_calls("{'k': 'v'} " * 5_000, TOOLS).calls == (), "many Python-literal spans"
    big = json.dumps({"rows": [{"name": f"r{i}", "v": i} for i in range(2_000)]})
    assert read_calls(big, TOOLS) == ReadCalls(), "data whose items have names is no call"
    deep = "[" * 50 + CALL + "]" * 50
    assert [c.name for c in read_calls(deep, TOOLS).calls] == ["file_reader"]
    long = "x" * (MAX_TEXT + 10) + CALL
    assert read_calls(long, TOOLS).calls == (), "text past the limit is not read"
    assert [c.name for c in read_calls(CALL + "x" * MAX_TEXT, TOOLS).calls] == ["file_reader"]
