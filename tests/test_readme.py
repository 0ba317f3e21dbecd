"""The README as a front page (issue 20): small, its links alive, every command it shows working as typed,
and a command line whose every option says what it does.

Commands are read from the README's shell code blocks. Every one is checked without running it (its
options parsed by dlbench's own parser, its names looked up; a `make` line dry-run with `make -n`), and
the cheap ones run as typed, in the repository, against a temporary results directory holding one tiny
NumPy run (conftest points DLBENCH_RESULTS_DIR there and keeps the tests offline).
"""

import argparse
import configparser
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from dlbench import cli, registry, studies

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_LIMIT_BYTES = 12 * 1024
ACTIVATE = ".venv/bin/activate"
# What runs in seconds: help, list, and the commands that only read the records. `run` is cheap only for
# variants that never import TensorFlow (see cheap_run); studies, predictions and `make experiment` are not.
# The make targets run the same commands again, so only two of them run (the others are dry-run).
CHEAP_DLBENCH_COMMANDS = {"list", "compare", "plot", "report"}
CHEAP_MAKE_TARGETS = {"list", "compare"}
COMMAND_TIMEOUT_S = 120


def shell_commands(text: str) -> list[str]:
    """Every command line of the shell code blocks of a Markdown text, its comment removed."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def markdown_links(path: Path) -> list[str]:
    """The relative link targets of a Markdown file (web links and in-page anchors left out)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    return [target.split("#")[0] for target in targets if not re.match(r"[a-z]+:|#", target)]


def check_dlbench_command(words: list[str]) -> None:
    """The words after `dlbench`: parsed as dlbench parses them, the experiment or study names known."""
    if "--help" in words or "-h" in words:
        return  # argparse exits on --help; these run as typed below.
    arguments = cli.build_parser().parse_args(words)
    if arguments.command == "study":
        studies.get(arguments.study)
    elif arguments.command != "list" and hasattr(arguments, "experiment"):
        experiment = registry.get(arguments.experiment)
        if arguments.command == "predict":
            assert experiment.predict is not None, f"{arguments.experiment} has no model to predict with"


def cheap_run(words: list[str]) -> bool:
    """`dlbench run` of variants that never import TensorFlow: a few seconds on the shipped sample."""
    arguments = cli.build_parser().parse_args(words)
    variants = (arguments.variants or "").split(",")
    experiment = registry.get(arguments.experiment)
    return bool(arguments.variants) and all(
        name in experiment.variants and not experiment.variants[name].uses_tensorflow for name in variants)


def make_is_installed() -> bool:
    """True when `make` would not (re)install .venv first: its stamp is newer than setup.cfg and pyproject.toml."""
    return subprocess.run(["make", "-q", ".venv/bin/.installed"], cwd=ROOT, capture_output=True).returncode == 0


def run_as_typed(command: str) -> subprocess.CompletedProcess:
    """The command in bash, in the repository, after `source .venv/bin/activate` as the README says.

    A `make` line whose install stamp is older than setup.cfg (a checkout after the install) would first
    reinstall the environment these tests run in: `-o` tells make to take the stamp as it is, so the
    line costs what its dlbench command does."""
    if command.startswith("make ") and not make_is_installed():
        command = "make -o .venv/bin/.installed " + command.removeprefix("make ")
    return subprocess.run(["bash", "-c", f"source {ACTIVATE} && {command}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT_S)


def check_make_command(words: list[str]) -> None:
    """A `make` line: the target exists and every dlbench command it would run parses (make -n runs nothing)."""
    dry_run = subprocess.run(["make", "-n", *words], cwd=ROOT, capture_output=True, text=True)
    assert dry_run.returncode == 0, f"make {shlex.join(words)}: {dry_run.stderr}"
    for line in dry_run.stdout.splitlines():
        command = shlex.split(line)
        if command and command[0].endswith("/dlbench"):
            check_dlbench_command(command[1:])


def check_pip_command(words: list[str]) -> None:
    """`.venv/bin/pip install -e '.[extra]'`: the extra is declared in setup.cfg."""
    assert words[:2] == ["install", "-e"] and len(words) == 3, f"unexpected pip command: {words}"
    extras = re.fullmatch(r"\.\[([\w,-]+)\]", words[2])
    assert extras, f"expected .[extra], got {words[2]}"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    declared = set(setup["options.extras_require"])
    assert set(extras.group(1).split(",")) <= declared, f"extras declared in setup.cfg: {sorted(declared)}"


@pytest.fixture
def results_with_one_run():
    """The conftest's results directory with one tiny NumPy run (one epoch on 200 images, no energy)."""
    results_dir = Path(os.environ["DLBENCH_RESULTS_DIR"])
    status = cli.main(["run", "mlp_mnist", "--variants", "numpy", "--set", "epochs=1 train_subset=200",
                       "--no-energy", "--results-dir", str(results_dir)])
    assert status == 0
    return results_dir


def test_readme_is_a_front_page_whose_links_lead_somewhere():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= README_LIMIT_BYTES
    commands = shell_commands(text)
    assert "make experiment" in commands and "make test" in commands
    assert commands.count(f"source {ACTIVATE}") == 1  # Said once, up front of the everyday commands.
    assert "docs/report-desktop.png" in text
    topics = text.split("<!-- topics:begin -->")[1].split("<!-- topics:end -->")[0]
    for name in registry.EXPERIMENTS:  # The generated table lists every topic, with its page.
        assert f"[{name}](docs/topics/{name}.md)" in topics, name
    for page in [README, *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in markdown_links(page):
            if target.endswith(".md"):
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_every_topic_has_a_page_with_its_generated_declaration():
    for name in registry.EXPERIMENTS:
        page = (ROOT / "docs" / "topics" / f"{name}.md").read_text(encoding="utf-8")
        block = page.split("<!-- declaration:begin -->")[1].split("<!-- declaration:end -->")[0]
        for variant in registry.get(name).variants:
            assert f"`{variant}`" in block, (name, variant)


def test_every_command_the_readme_shows_works_as_typed(results_with_one_run):
    commands = shell_commands(README.read_text(encoding="utf-8"))
    if not (ROOT / ACTIVATE).exists():
        pytest.skip(f"no {ACTIVATE}: the README's commands need the environment `make test` creates")
    ran = []
    for command in commands:
        program, *words = shlex.split(command)
        cheap = False
        if program == "source":
            assert words == [ACTIVATE], command
        elif program == "export":
            continue  # A setting the reader adapts (a path of their own).
        elif program == "dlbench":
            check_dlbench_command(words)
            cheap = ("--help" in words or words[0] in CHEAP_DLBENCH_COMMANDS
                     or (words[0] == "run" and cheap_run(words)))
        elif program == "make":
            check_make_command(words)
            cheap = words[0] in CHEAP_MAKE_TARGETS
        elif program == ".venv/bin/pip":
            check_pip_command(words)
        else:
            pytest.fail(f"the README shows `{command}`, which this test does not know how to check")
        if cheap:
            finished = run_as_typed(command)
            assert finished.returncode == 0, f"`{command}` exited {finished.returncode}:\n{finished.stderr[-2000:]}"
            ran.append(command)
    assert {"dlbench --help", "dlbench list", "make list"} <= set(ran)
    assert any(command.startswith("dlbench compare") for command in ran)
    assert (results_with_one_run / "report.html").exists()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_line_option_has_help():
    parser = cli.build_parser()
    missing = []
    for name, subparser in subcommands(parser).items():
        for action in subparser._actions:
            if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
                missing.append(f"dlbench {name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help text: {', '.join(missing)}"


def test_dlbench_help_names_every_command_and_says_what_each_does():
    parser = cli.build_parser()
    commands = subcommands(parser)
    assert set(commands) == set(cli.COMMANDS)
    described = parser.description
    for name in commands:
        assert re.search(rf"\b{name}\b", described), f"`dlbench --help` does not describe {name}"
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert all((choice.help or "").strip() for choice in action._choices_actions)


def load_update_readme():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_update_readme_regenerates_every_block_from_the_records(tmp_path):
    """On copies of README.md, docs/ and the committed records: every block filled, a second pass a no-op."""
    results_dir = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "runs", results_dir / "runs", ignore=shutil.ignore_patterns("*.log"))
    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    shutil.copy(README, root / "README.md")
    shutil.copytree(ROOT / "docs" / "topics", root / "docs" / "topics")
    shutil.copy(ROOT / "docs" / "measurements.md", root / "docs" / "measurements.md")
    update_readme = load_update_readme()
    update_readme.update(str(results_dir), root=root)
    topics = (root / "README.md").read_text(encoding="utf-8").split("<!-- topics:begin -->")[1]
    rows = [line for line in topics.split("<!-- topics:end -->")[0].splitlines() if line.startswith("| [")]
    assert [row.split("]")[0][3:] for row in rows] == list(registry.EXPERIMENTS)
    assert "### mlp_mnist" in (root / "docs" / "measurements.md").read_text(encoding="utf-8")
    assert "(a) " in topics  # At least one topic measured, on a machine named under the table.
    assert update_readme.update(str(results_dir), root=root) == []
