"""The README and docs/*.md stay true to the code: every command they show reaches its entry point's argument parser
and parses there, every repo path, dotted name and relative link they show exists.

Commands come from ```bash blocks (each line; `\\` continuations joined, `#` comments dropped) and from inline code
that starts with `python -m`, `torchrun` or a dotted module name followed by flags. The docs' notation: `[...]`
optional (checked as if given), `a|b` and `{a,b}` alternatives (each is checked), UPPER-CASE words placeholders, a
lone `...` more arguments (then only the flags shown are checked, not the whole line).

- `python -m MODULE`, `torchrun ... -m MODULE`, `python SCRIPT.py`: one subprocess (this file run as a script) runs
  each entry point the way `python -m` does (runpy) up to the moment it parses its arguments, and takes its parser
  there, so nothing else runs. Every `--flag` shown must be spelled in full in the parser's help, and a whole line
  from a bash block must parse (positionals, choices, types). torchrun's own options are checked against torchrun.
- `make TARGET`: a target of the Makefile; `bash SCRIPT`: the script exists and, where it has a `DRY_RUN` mode, the
  dry run passes and lists every step named in `STEPS=`; `pytest PATH`: the paths exist.
- Paths in code (`configs/…`, `tests/…`, `docs/…`, the packages; `{a,b}` expanded, `*` globbed) exist; a `tools/…`
  path is ours or mmdet's / mmseg's; a bare `*.py` name in inline code names a file of this repo.
- Dotted names in inline code (`backbones.load_pretrained`, `contracts.records.{make_record,write_record}`) import.
- Relative links point to files that exist, an `#anchor` to a heading there; every page of docs/ is linked from the
  README (the map), which stays under 250 lines.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PACKAGES = ("contracts", "backbones", "distill_pretrain", "transfer", "benchmarks")
REPO_DIRS = (*PACKAGES, "configs", "docs", "tests", "tools", "requirements", ".ci")
PYTHONS = {"python", "python3", ".venv/bin/python", "$(PY)"}
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
INLINE_CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w.{},*/-]*)" % "|".join(re.escape(d) for d in REPO_DIRS))
DOTTED = re.compile(r"^((?:%s)(?:\.[\w{},.]+)+)(\(.*\))?$" % "|".join(PACKAGES))
DOTTED_COMMAND = re.compile(r"^(?:%s)\.[\w.]+ --" % "|".join(PACKAGES))


@dataclass(frozen=True)
class Snippet:
    """Code text shown in a doc: a line of a code block or one inline code span."""
    where: str  # "README.md:42"
    text: str
    block: str | None  # the fence's language for block lines ('' for a bare fence), None for inline code


@dataclass(frozen=True)
class Command:
    """One command line a doc shows, one variant of its alternatives, split into words."""
    where: str
    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    whole: bool  # every argument is shown (a bash block line without `...`): the whole line must parse


# ---------------------------------------------------------------------------------------------- reading the docs
def snippets(doc: Path) -> list[Snippet]:
    """Code block lines (continuations joined) and inline code spans (per paragraph, so a span may wrap)."""
    name = doc.relative_to(REPO).as_posix()
    out: list[Snippet] = []
    fence: str | None = None
    pending, start, paragraph = "", 0, []  # a line continued with "\" and where it began; the paragraph's lines

    def flush_paragraph() -> None:
        if paragraph:
            text = " ".join(line.strip() for _, line in paragraph).replace("\\|", "|")
            out.extend(Snippet(f"{name}:{paragraph[0][0]}", span, None) for span in INLINE_CODE.findall(text))
            paragraph.clear()

    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            flush_paragraph()
            fence = line.strip()[3:].strip() if fence is None else None
            continue
        if fence is None:
            if line.strip():
                paragraph.append((number, line))
            else:
                flush_paragraph()
            continue
        start = start if pending else number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(Snippet(f"{name}:{start}", pending + line, fence))
        pending = ""
    flush_paragraph()
    return out


def expand_braces(word: str) -> list[str]:
    """`a{b,c}d` → [abd, acd] (recursively; a brace group without a comma is kept)."""
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    return [expanded for choice in match.group(1).split(",")
            for expanded in expand_braces(word[:match.start()] + choice + word[match.end():])]


def alternatives(word: str) -> list[str]:
    """The docs' alternatives in one word: `{a,b}` and `a|b`."""
    return [alt for expanded in expand_braces(word) for alt in expanded.split("|")]


def commands_of(snippet: Snippet) -> list[Command]:
    """The command variants a snippet shows ([] when it is not a command)."""
    if snippet.block is None:
        text = snippet.text.strip()
        if not (text.startswith(("python -m ", "torchrun ")) or DOTTED_COMMAND.match(text)):
            return []
        if DOTTED_COMMAND.match(text):
            text = "python -m " + text
    elif snippet.block == "bash":
        text = snippet.text
    else:
        return []
    try:
        words = shlex.split(text, comments=True)
    except ValueError as err:
        raise AssertionError(f"{snippet.where}: cannot split {text!r}: {err}") from err
    if "|" in words:  # a shell pipe: the command is what comes before it
        words = words[:words.index("|")]
    words = [w.replace("[", "").replace("]", "") for w in words]
    words = [w for w in words if w]
    if not words:
        return []
    whole = snippet.block == "bash" and not ({"...", "…"} & set(words))
    words = [w for w in words if w not in ("...", "…")]
    choices = [alternatives(w) for w in words]
    out = []
    for i in range(max(len(c) for c in choices)):
        variant = [c[min(i, len(c) - 1)] for c in choices]
        env = []
        while variant and ENV_ASSIGNMENT.match(variant[0]):
            key, value = variant.pop(0).split("=", 1)
            env.append((key, value))
        out.append(Command(snippet.where, tuple(variant), tuple(env), whole))
    return out


ALL_SNIPPETS = [s for doc in DOCS for s in snippets(doc)]
COMMANDS = list(dict.fromkeys(c for s in ALL_SNIPPETS for c in commands_of(s)))


# ------------------------------------------------------------------------------------------ what a command names
@dataclass(frozen=True)
class Call:
    """An entry point and the arguments a command gives it."""
    entry: str  # a module name, or a script path relative to the repo
    args: tuple[str, ...]
    whole: bool


def calls_of(command: Command) -> list[Call]:
    """The Python entry points a command runs (torchrun: torchrun itself and the module it starts); [] for others."""
    words = list(command.words)
    if words[0] in PYTHONS and len(words) > 2 and words[1] == "-m" and words[2] != "pytest":
        return [Call(words[2], tuple(words[3:]), command.whole)]
    if words[0] in PYTHONS and len(words) > 1 and words[1].endswith(".py"):
        return [Call(words[1], tuple(words[2:]), command.whole)]
    if words[0] == "torchrun":
        assert "-m" in words, f"{command.where}: torchrun without -m MODULE: {' '.join(words)}"
        module_at = words.index("-m") + 1
        return [Call("torch.distributed.run", tuple(words[1:]), command.whole),
                Call(words[module_at], tuple(words[module_at + 1:]), command.whole)]
    return []


def flags(args: tuple[str, ...]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def in_help(flag: str, help_text: str) -> bool:
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), help_text) is not None


CALLS = list(dict.fromkeys(call for c in COMMANDS for call in calls_of(c)))


# ----------------------------------------------------------------------- the probe: run as `python THIS IN OUT`
class ParserReached(BaseException):
    """Raised where an entry point starts parsing its arguments (a BaseException: no `except Exception` hides it)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def reach_parser(entry: str) -> argparse.ArgumentParser:
    """Run ``entry`` as `python -m` / `python SCRIPT` would, up to its first `parse_args`; return that parser."""
    original = argparse.ArgumentParser.parse_known_args

    def stop(self: argparse.ArgumentParser, args=None, namespace=None):
        raise ParserReached(self)

    argparse.ArgumentParser.parse_known_args = stop
    sys.argv = [entry, "--help"]
    try:
        if entry.endswith(".py"):
            runpy.run_path(str(REPO / entry), run_name="__main__")
        else:
            runpy.run_module(entry, run_name="__main__", alter_sys=True)
    except ParserReached as reached:
        return reached.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise RuntimeError("ran to its end without parsing arguments")


def parse_error(parser: argparse.ArgumentParser, args: list[str]) -> str | None:
    """argparse's message for ``args`` (None when they parse)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exit_:
        return (err.getvalue().strip().splitlines() or [f"exit {exit_.code}"])[-1] if exit_.code else None
    return None


def resolve(name: str) -> str | None:
    """None when ``name`` is an importable module or an attribute path of one, else why not."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for i, attr in enumerate(parts[cut:], cut):
            if not hasattr(obj, attr):
                return f"{'.'.join(parts[:i])} has no {attr!r}"
            obj = getattr(obj, attr)
        return None
    return f"no module {parts[0]!r}"


def probe(request: dict) -> dict:
    entries = {}
    for entry, argvs in request["entries"].items():
        try:
            parser = reach_parser(entry)
        except BaseException as err:  # noqa: BLE001 - any failure is the finding (SystemExit included)
            entries[entry] = {"error": f"{type(err).__name__}: {err}", "help": "", "parse_errors": []}
            continue
        entries[entry] = {"error": None, "help": parser.format_help(),
                          "parse_errors": [parse_error(parser, argv) for argv in argvs]}
    return {"entries": entries, "names": {name: resolve(name) for name in request["names"]}}


# ----------------------------------------------------------------------------------------------------- the tests
def dotted_names() -> list[tuple[str, str]]:
    out = []
    for s in ALL_SNIPPETS:
        match = DOTTED.match(s.text.strip()) if s.block is None else None
        if match:
            out.extend((s.where, name) for name in expand_braces(match.group(1)))
    return list(dict.fromkeys(out))


NAMES = dotted_names()


def _probe_all(tmp_dir: Path) -> dict:
    argvs: dict[str, list[list[str]]] = {}
    for call in CALLS:
        argvs.setdefault(call.entry, [])
        if call.whole and list(call.args) not in argvs[call.entry]:
            argvs[call.entry].append(list(call.args))
    request, answer = tmp_dir / "request.json", tmp_dir / "answer.json"
    request.write_text(json.dumps({"entries": argvs, "names": sorted({n for _, n in NAMES})}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, str(request), str(answer)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(answer.read_text())
    result["argvs"] = argvs
    return result


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> dict:
    return _probe_all(tmp_path_factory.mktemp("docs_probe"))

def test_the_docs_show_commands() -> None:
    entries = {call.entry for call in CALLS}
    assert {"benchmarks.demo", "transfer.detection.train", "transfer.linear_probe", "transfer.few_shot",
            "distill_pretrain.save_logits", "distill_pretrain.train", "distill_pretrain.export",
            "benchmarks.table", "benchmarks.plots"} <= entries
    assert any(c.words[:2] == ("make", "test") for c in COMMANDS)
    assert any(c.words[:2] == ("make", "demo") for c in COMMANDS)
    assert any(e.endswith("mmdet/.mim/tools/train.py") for e in entries)

@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.where} {' '.join(c.words[:3])}")
def test_command_is_live(command: Command, probed: dict, tmp_path: Path) -> None:
    words, where = command.words, command.where
    calls = calls_of(command)
    for call in calls:
        result = probed["entries"][call.entry]
        assert result["error"] is None, f"{where}: {call.entry}: {result['error']}"
        unknown = [f for f in flags(call.args) if not in_help(f, result["help"])]
        if call.entry == "torch.distributed.run":  # torchrun's own options: the words before -m
            unknown = [f for f in flags(call.args[:call.args.index("-m")]) if not in_help(f, result["help"])]
        assert not unknown, f"{where}: {call.entry} has no {unknown} (see its --help)"
        if call.whole:
            error = result["parse_errors"][probed["argvs"][call.entry].index(list(call.args))]
            assert error is None, f"{where}: `{' '.join(words)}`: {call.entry} refuses it: {error}"
    if calls:
        return
    if words[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
        assert set(words[1:]) <= targets, f"{where}: no make target {set(words[1:]) - targets}"
    elif words[0] == "bash":
        script = REPO / words[1]
        assert script.is_file(), f"{where}: no script {words[1]}"
        if "DRY_RUN" in script.read_text():
            env = {**os.environ, **dict(command.env), "DRY_RUN": "1", "OUT": str(tmp_path)}
            proc = subprocess.run(["bash", *words[1:]], cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=60)
            assert proc.returncode == 0, f"{where}: the dry run failed: {proc.stderr[-2000:]}"
            listed = set(re.findall(r"^== (\S+) \(limit", proc.stdout, re.M))
            steps = set(dict(command.env).get("STEPS", "").split())
            assert listed and steps <= listed, f"{where}: no step {steps - listed} in {words[1]}"
    elif words[0] == "pytest" or words[:3] == ("python", "-m", "pytest"):
        paths = [w.split("::")[0] for w in words if w.startswith("tests/")]
        assert paths and all((REPO / p).exists() for p in paths), f"{where}: no test path {paths}"
    else:
        pytest.fail(f"{where}: `{' '.join(words)}`: a command this test cannot check (teach it)")

def _path_exists(path: str) -> bool:
    path = path.rstrip(".,:;")
    if "*" in path:
        return any(REPO.glob(path))
    if (REPO / path).exists():
        return True
    if path.startswith("tools/"):  # mmdet's / mmseg's own tools
        site = Path(importlib.util.find_spec("mmdet").origin).parents[1]
        return any((site / pkg / ".mim" / path).exists() for pkg in ("mmdet", "mmseg"))
    return False

@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.relative_to(REPO).as_posix())
def test_paths_shown_exist(doc: Path) -> None:
    names = {p.name for d in ("configs", *PACKAGES, "tests", "tools") for p in (REPO / d).rglob("*.py")}
    missing = []
    for s in snippets(doc):
        for path in REPO_PATH.findall(s.text):
            missing += [f"{s.where}: {p}" for p in expand_braces(path) if not _path_exists(p)]
        if s.block is None and re.fullmatch(r"[\w.{},-]+\.py", s.text.strip()):
            missing += [f"{s.where}: {n}" for n in expand_braces(s.text.strip()) if n not in names]
    assert not missing, "paths the docs show that do not exist:\n" + "\n".join(missing)

def test_dotted_names_import(probed: dict) -> None:
    wrong = [f"{where}: {name}: {probed['names'][name]}" for where, name in NAMES if probed["names"][name]]
    assert NAMES, "the docs name no module or function: is the pattern right?"
    assert not wrong, "\n".join(wrong)

def _slugs(doc: Path) -> set[str]:
    """GitHub's heading anchors."""
    headings = re.findall(r"^#+\s+(.*?)\s*$", doc.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}

@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.relative_to(REPO).as_posix())
def test_relative_links_resolve(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _slugs(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.name}: broken links {broken}"

def test_readme_is_a_map_that_links_every_guide() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "README.md is a map: move detail into docs/"
    linked = {(REPO / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}
    unlinked = [d.name for d in DOCS[1:] if d.resolve() not in linked]
    assert not unlinked, f"docs/ pages the README does not link: {unlinked}"


if __name__ == "__main__":
    request_file, answer_file = sys.argv[1:3]
    answer = probe(json.loads(Path(request_file).read_text()))
    Path(answer_file).write_text(json.dumps(answer))
