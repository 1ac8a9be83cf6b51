"""The documentation describes what exists: cited results and links resolve, every registered name and console
script is in the README, and nothing points outside the repository."""
import importlib.metadata
import itertools
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "examples").glob("*/README.md")])
RESULT_PATH = re.compile(r"results/[A-Za-z0-9_./{},+-]+")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def expand_braces(text: str):
    """'a_{json,md}' -> ['a_json', 'a_md'] (shell brace expansion, several groups allowed)."""
    parts = re.split(r"\{([^{}]*)\}", text)
    literals, groups = parts[0::2], [g.split(",") for g in parts[1::2]]
    for choice in itertools.product(*groups):
        yield "".join(lit + alt for lit, alt in itertools.zip_longest(literals, choice, fillvalue=""))


def cited_results(text: str):
    for match in RESULT_PATH.findall(text):
        match = match.rstrip(".,)")
        if "<" in match or match.endswith("/") or "." not in Path(match).name:
            continue  # a pattern such as results/<method>/ or a folder, not a file
        yield from expand_braces(match)


def test_brace_expansion_helper():
    assert list(expand_braces("results/x_{json,md}")) == ["results/x_json", "results/x_md"]
    assert sorted(expand_braces("r/{a,b}_{1,2}.json")) == ["r/a_1.json", "r/a_2.json", "r/b_1.json", "r/b_2.json"]
    assert list(cited_results("see `results/mgm/t.json`, and results/<method>/")) == ["results/mgm/t.json"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_results_exist(doc):
    missing = [p for p in cited_results(doc.read_text()) if not (ROOT / p).is_file()]
    assert not missing, f"{doc.name} cites results that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        if not (doc.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{doc.name} links to missing files: {broken}"


def test_every_results_file_is_in_a_method_folder():
    loose = [p.name for p in (ROOT / "results").iterdir() if p.is_file()]
    assert not loose, f"results files outside results/<method>/: {loose}"


def test_readme_is_short_and_names_everything_registered():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    import iterref_fairseq  # noqa: F401  (registers everything)
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
    from fairseq.registry import REGISTRIES
    from fairseq.tasks import TASK_REGISTRY

    def ours(registry):
        return {name for name, cls in registry.items() if cls.__module__.startswith("iterref_fairseq")}

    archs = {a for a, cls in ARCH_MODEL_REGISTRY.items() if cls.__module__.startswith("iterref_fairseq")}
    scorers = ours(REGISTRIES["scoring"]["registry"])
    names = ours(TASK_REGISTRY) | ours(MODEL_REGISTRY) | ours(CRITERION_REGISTRY) | archs | scorers
    assert {"translation_refine", "refinement_nat_tiny", "flexmdm_loss", "exact_match"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"README.md does not name these registered names: {missing}"


def test_readme_names_every_console_script():
    readme = (ROOT / "README.md").read_text()
    dist = importlib.metadata.distribution("iterref-fairseq")
    scripts = {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
    assert "iterref-user-dir" in scripts
    deprecated = set(re.findall(r"`(iterref-[a-z-]+)` → `iterref-", (ROOT / "CHANGELOG.md").read_text()))
    missing = sorted(s for s in scripts - deprecated if f"`{s}`" not in readme)
    assert not missing, f"README.md does not name these console scripts: {missing}"


def tracked_text_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for name in out.splitlines():
        path = ROOT / name
        if path.suffix in {".md", ".py", ".sh", ".cff", ".txt", ".ini", ".cfg"} or path.name == "Makefile":
            if path.is_file():
                yield path


def test_nothing_points_outside_the_repository():
    outside = "../" + "shared"  # spelled in two parts so that this file does not match itself
    bad = [str(p.relative_to(ROOT)) for p in tracked_text_files() if outside in p.read_text(errors="replace")]
    assert not bad, f"these files refer to {outside}, which is not part of the project: {bad}"


def test_docs_state_hardware_not_the_development_process():
    phrases = ("this project's", "this session", "lent to", "design-card", "the reviewer")
    found = [(doc.name, ph) for doc in DOCS for ph in phrases if ph in doc.read_text().lower()]
    assert not found, f"development-process phrases in the docs: {found}"


def test_one_version_number():
    from iterref_fairseq.version import __version__

    import iterref_fairseq

    assert iterref_fairseq.__version__ == __version__
    assert importlib.metadata.version("iterref-fairseq") == __version__
    setup = (ROOT / "setup.py").read_text()
    assert __version__ not in setup, "setup.py must read the version from iterref_fairseq/version.py"
    assert f"## {__version__}" in (ROOT / "CHANGELOG.md").read_text()


# ---------------------------------------------------------------------- documented commands parse
PLACEHOLDERS = {"$(iterref-user-dir)": str(ROOT / "iterref_fairseq")}


def documented_commands(text: str):
    """Commands of the ```bash blocks: continuation lines joined, comments and pipes dropped, $VARS replaced."""
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        variables = {}
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s{2,})#.*$", "", line).strip()
            line = line.split(" | ")[0]
            if not line:
                continue
            for key, value in PLACEHOLDERS.items():
                line = line.replace(f'"{key}"', value).replace(key, value)
            # a variable set earlier in the block takes its value, any other one a placeholder
            line = re.sub(r'"?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?"?', lambda m: variables.get(m.group(1), "X"), line)
            if "=" in line.split()[0]:
                name, value = line.split("=", 1)
                variables[name] = value.strip('"')
                continue
            yield line


def test_documented_commands_helper():
    text = "```bash\nU=$(iterref-user-dir)\nfairseq-train D --user-dir \"$U\" \\\n  --lr 1  # c\n" \
           "iterref-plot-orders $DATA --out o | tail -2\n```\n"
    assert list(documented_commands(text)) == [
        f"fairseq-train D --user-dir {ROOT / 'iterref_fairseq'} --lr 1", "iterref-plot-orders X --out o"]


def all_documented_commands():
    for doc in DOCS:
        for cmd in documented_commands(doc.read_text()):
            yield doc.name, cmd


@pytest.mark.parametrize("doc,cmd", [c for c in all_documented_commands() if c[1].startswith("iterref-")])
def test_documented_iterref_commands_parse(doc, cmd, capsys):
    import shlex

    argv = shlex.split(cmd)
    dist = importlib.metadata.distribution("iterref-fairseq")
    eps = {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}
    assert argv[0] in eps, f"{doc}: {argv[0]} is not a console script"
    module = importlib.import_module(eps[argv[0]].value.split(":")[0])
    if not hasattr(module, "build_parser"):
        pytest.skip(f"{argv[0]} has no build_parser")
    module.build_parser().parse_args(argv[1:])  # argparse exits on an unknown flag
    assert "deprecated" not in capsys.readouterr().err, f"{doc}: {cmd} uses a deprecated flag"


@pytest.mark.parametrize("doc,cmd", [c for c in all_documented_commands()
                                     if c[1].startswith(("fairseq-train", "fairseq-generate"))])
def test_documented_fairseq_commands_parse(doc, cmd):
    """Every flag of a documented fairseq-train / fairseq-generate command is known to fairseq + the plugin."""
    import shlex

    from fairseq import options

    argv = shlex.split(cmd)
    if "..." in argv:
        argv = [a for a in argv if a != "..."]
    parser = options.get_training_parser() if argv[0] == "fairseq-train" else options.get_generation_parser()
    if "--user-dir" in argv and argv[argv.index("--user-dir") + 1] == "iterref_fairseq":
        argv[argv.index("--user-dir") + 1] = str(ROOT / "iterref_fairseq")
    options.parse_args_and_arch(parser, argv[1:])
