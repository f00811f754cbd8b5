"""The docs never rot: the site builds with warnings as errors, and every tutorial's code runs.

A tutorial is a Markdown page under docs/tutorials/. Its ```python and ```bash blocks run in order,
in a fresh directory with its own $OFFLINE_ZOO_HOME and no network access to the hub
(HF_HUB_OFFLINE=1); python blocks share one namespace, like a notebook. The page shows the
realistic sizes; HTML comments, invisible on the rendered page, shrink them for the test:

    <!-- test: replace "n_steps=100_000" "n_steps=20" -->   every block, page-wide; the old text
                                                           must occur, so a stale rule fails
    <!-- test: skip needs a Ray cluster -->                 the next block is not run (a reason
                                                           is required)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))

_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
_DIRECTIVE = re.compile(r"<!--\s*test:\s*(?P<body>.*?)\s*-->", re.DOTALL)
_REPLACE = re.compile(r'^replace\s+"(?P<old>(?:[^"\\]|\\.)*)"\s+"(?P<new>(?:[^"\\]|\\.)*)"$', re.DOTALL)


@dataclass
class Block:
    lang: str
    code: str
    line: int
    skip: str | None = None


@dataclass
class Tutorial:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    replacements: list[tuple[str, str]] = field(default_factory=list)

    def runnable(self) -> list[Block]:
        return [b for b in self.blocks if b.lang in ("python", "bash") and b.skip is None]


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\n", "\n")


def parse_tutorial(path: Path) -> Tutorial:
    text = path.read_text()
    tutorial = Tutorial(path)
    pending_skip = None
    pos = 0
    events = sorted(
        [(m.start(), "fence", m) for m in _FENCE.finditer(text)]
        + [(m.start(), "directive", m) for m in _DIRECTIVE.finditer(text)],
        key=lambda e: e[0],
    )
    for start, kind, m in events:
        if start < pos:  # a directive quoted inside a code block
            continue
        line = text.count("\n", 0, start) + 1
        if kind == "directive":
            body = m["body"]
            if body.startswith("skip"):
                reason = body[len("skip"):].strip()
                if not reason:
                    raise ValueError(f"{path.name}:{line}: 'test: skip' needs a reason")
                pending_skip = reason
            elif (r := _REPLACE.match(body)) is not None:
                tutorial.replacements.append((_unescape(r["old"]), _unescape(r["new"])))
            else:
                raise ValueError(f"{path.name}:{line}: unknown test directive {body!r}")
        else:
            tutorial.blocks.append(Block(m["lang"], m["code"], line, pending_skip))
            pending_skip = None
        pos = m.end()
    return tutorial


def tutorial_script(tutorial: Tutorial) -> str:
    """One python script that runs the tutorial's blocks in order (bash blocks through bash)."""
    used = {old: 0 for old, _ in tutorial.replacements}
    parts = ["import subprocess, sys, time", "sys.argv = ['tutorial']", "_t0 = time.perf_counter()"]
    for block in tutorial.runnable():
        code = block.code
        for old, new in tutorial.replacements:
            used[old] += code.count(old)
            code = code.replace(old, new)
        where = f"{tutorial.path.name}:{block.line}"
        parts.append(f"print(f'--- {where} ({block.lang}) at {{time.perf_counter() - _t0:.1f}}s', flush=True)")
        if block.lang == "python":
            parts.append(f"exec(compile({code!r}, {where!r}, 'exec'))")
        else:
            parts.append(f"subprocess.run(['bash', '-euo', 'pipefail', '-c', {code!r}], check=True)")
    parts.append("print(f'--- done at {time.perf_counter() - _t0:.1f}s', flush=True)")
    stale = [old for old, n in used.items() if n == 0]
    if stale:
        raise AssertionError(f"{tutorial.path.name}: 'test: replace' rules match no code: {stale}")
    return "\n".join(parts) + "\n"


def test_directives_are_parsed(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        '<!-- test: replace "steps=1000" "steps=2" -->\n'
        "```python\nx = dict(steps=1000)\n```\n"
        "<!-- test: skip needs a cluster -->\n\n"
        "```bash\nray start --head\n```\n"
        "```bash\necho ok > out.txt\n```\n"
        "```text\nnot code\n```\n"
    )
    tutorial = parse_tutorial(page)
    assert [b.lang for b in tutorial.runnable()] == ["python", "bash"]
    assert tutorial.blocks[1].skip == "needs a cluster"
    script = tutorial_script(tutorial)
    assert "steps=2" in script and "steps=1000" not in script and "ray start" not in script
    subprocess.run([sys.executable, "-c", script + "assert x == {'steps': 2}"], cwd=tmp_path, check=True)
    assert (tmp_path / "out.txt").read_text().strip() == "ok"

    page.write_text('<!-- test: replace "nowhere" "x" -->\n```python\npass\n```\n')
    with pytest.raises(AssertionError, match="match no code"):
        tutorial_script(parse_tutorial(page))
    page.write_text("<!-- test: skip -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        parse_tutorial(page)


def test_every_tutorial_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert TUTORIALS, "no tutorial found under docs/tutorials"
    for path in TUTORIALS:
        assert f"tutorials/{path.name}" in nav, f"{path.name} is not in mkdocs.yml's nav"


def _run_page(path: Path, tmp_path: Path) -> None:
    tutorial = parse_tutorial(path)
    assert tutorial.runnable(), f"{path.name} has no runnable code"
    script = tutorial_script(tutorial)
    env = dict(os.environ)
    env.update(
        OFFLINE_ZOO_HOME=str(tmp_path / "home"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    _run_page(path, tmp_path)


# The front pages' snippets run as written (at tiny scale through the same directives), or carry a
# `test: skip` that says why they cannot (a network, an install, a server).
FRONT_PAGES = [ROOT / "README.md", DOCS / "index.md"]


@pytest.mark.parametrize("path", FRONT_PAGES, ids=["README", "docs-index"])
def test_front_page_snippets_run(path, tmp_path):
    _run_page(path, tmp_path)


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")
    mkdocs = shutil.which("mkdocs")
    cmd = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [*cmd, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed ({shlex.join(cmd)}):\n{proc.stderr[-8000:]}"
    site = tmp_path / "site"
    assert not list(site.rglob("*.py")), "a Python file (e.g. the mkdocs hook) was copied into the site"
    for page in ("index.html", "cli/index.html", "reference/algorithms/index.html", "tutorials/quickstart/index.html"):
        assert (site / page).is_file(), page
    # the CLI page holds the parsers' real help, the reference the real docstrings
    assert "--suite" in (site / "cli/index.html").read_text()
    assert "learn" in (site / "reference/algorithms/index.html").read_text()
    # the config tables come from the dataclasses and YAML files (every field, the per-task values)
    dt_page = (site / "algorithms/dt/index.html").read_text()
    from offline_zoo.algos.dt import DTConfig
    import dataclasses

    assert all(f"<code>{f.name}</code>" in dt_page for f in dataclasses.fields(DTConfig))
    assert "reacher2d: <code>37500</code>" in dt_page and "<!-- config:" not in dt_page


def _public_api():
    """(qualified name, object) of every class and function a module of the package exports in
    ``__all__`` (where it is defined), and of the public methods and properties of those classes."""
    import importlib
    import inspect
    import pkgutil

    import offline_zoo

    for info in pkgutil.walk_packages(offline_zoo.__path__, "offline_zoo."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or obj.__module__ != module.__name__:
                continue
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, raw in vars(obj).items():
                    fn = raw.fget if isinstance(raw, property) else getattr(raw, "__func__", raw)
                    if not attr.startswith("_") and inspect.isfunction(fn):
                        # an override may inherit its base's docstring (inspect.getdoc looks it up)
                        yield f"{module.__name__}.{name}.{attr}", raw if isinstance(raw, property) else getattr(obj, attr)


def test_every_public_name_has_a_docstring_with_an_example():
    import inspect

    api = dict(_public_api())
    assert len(api) > 200, "the walk over the package found too little"
    undocumented = [name for name, obj in api.items() if not inspect.getdoc(obj)]
    assert not undocumented, f"public names without a docstring: {undocumented}"
    # classes and functions (not every method) carry a runnable example; --doctest-modules runs them
    top_level = {n: o for n, o in api.items() if inspect.isclass(o) or (inspect.isfunction(o) and "." not in o.__qualname__)}
    no_example = [name for name, obj in top_level.items() if ">>>" not in inspect.getdoc(obj)]
    assert not no_example, f"public classes/functions without an example: {no_example}"


def test_readme_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert "docs/index.md" in readme and "mkdocs" in readme


def _tested_versions() -> dict[str, str]:
    text = (DOCS / "installation.md").read_text()
    table = text.split("<!-- tested-versions -->", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in table.strip().splitlines()[2:]]
    return {name.strip(): version.split()[0] for name, version in rows}


def test_tested_versions_are_stated_once_and_allowed():
    # the versions docs/installation.md says were tested: the same in pyproject's comment, and each
    # inside what pyproject allows (a stated version the project refuses to install would be a lie)
    import tomllib

    from packaging.requirements import Requirement

    tested = _tested_versions()
    assert {"torch", "transformers", "peft", "d3rlpy", "gymnasium"} <= set(tested)
    text = (ROOT / "pyproject.toml").read_text()
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    for name, version in tested.items():
        assert f"{name} {version}" in comment, f"pyproject.toml's comment does not state {name} {version}"
    project = tomllib.loads(text)["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["atari"] + project["optional-dependencies"]["kitchen"]]
    for req in requirements:
        if req.name in tested:
            assert req.specifier.contains(tested[req.name]), f"{req} excludes the tested {req.name} {tested[req.name]}"
    assert project["requires-python"] and Requirement(f"python{project['requires-python']}").specifier.contains(tested["python"])
