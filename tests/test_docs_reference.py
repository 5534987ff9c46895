"""The documentation site cannot drift from the code: its reference pages are generated from it, every setting
and error class must carry a description for them, and the hand-written pages name only what exists.

The reference pages come from scripts/docs_reference.py (the MkDocs hook that `make docs` runs); these tests
call the same functions, without MkDocs, and check the pages against the code through other doors (the app's
routes, the Typer commands, the folders on disk).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import typer
import yaml

import mlgate.errors
from mlgate.cli.main import app as cli_app
from mlgate.errors import MlgateError
from mlgate.settings import Settings

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "src" / "mlgate"
# Environment variables the pages may name that are not settings: the CLI's client options, a shell variable
# of the security walk-through, and the test suite's switch.
NOT_SETTINGS = {"MLGATE_URL", "MLGATE_API_KEY", "MLGATE_KEY", "MLGATE_REQUIRE_SERVICES"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


reference = _load("docs_reference")
layers = _load("layers")


def _section(page: str, heading: str) -> str:
    """The part of a generated page from ``heading`` to the next heading of any level."""
    start = page.index(heading)
    following = re.search(r"\n#+ ", page[start + len(heading):])
    return page[start:] if following is None else page[start:start + len(heading) + following.start()]


def test_every_setting_has_a_description_and_a_row() -> None:
    page = reference.settings_page()
    undocumented = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert not undocumented, f"Settings fields without Field(description=...): {undocumented}"
    rows = {match.group(1): line for line in page.splitlines() if (match := re.match(r"\| `(\w+)`", line))}
    for name, field in Settings.model_fields.items():
        row = rows[name]
        assert f"`MLGATE_{name.upper()}`" in row
        assert reference.escape(field.description) in row
    assert len(rows) == len(Settings.model_fields)


def test_setting_defaults_are_the_real_ones() -> None:
    rows = {row["name"]: row for row in reference.settings_rows()}
    assert rows["port"]["default"] == "`8000`" and rows["port"]["type"] == "int"
    assert rows["max_body_bytes"]["default"] == "`16777216`"
    assert rows["jwt_secret"]["default"] == "unset"
    assert rows["user_models"]["default"] == '`["*"]`'
    assert "120/minute" in rows["rate_limit_tiers"]["default"]
    # Not this machine's home directory: where the default comes from.
    assert str(Path.home()) not in rows["data_dir"]["default"] and "XDG_DATA_HOME" in rows["data_dir"]["default"]


def test_every_error_class_has_a_meaning_status_and_code() -> None:
    page = reference.errors_page()
    classes = [cls for _, cls in inspect.getmembers(mlgate.errors, inspect.isclass)
               if issubclass(cls, MlgateError) and cls.__module__ == "mlgate.errors"]
    assert len(classes) >= 29
    rows = {row["class"]: row for row in reference.error_rows()}
    assert set(rows) == {cls.__name__ for cls in classes}
    undocumented = [name for name, row in rows.items() if not row["meaning"].strip()]
    assert not undocumented, f"error classes without a docstring (or a note in the errors.py tree): {undocumented}"
    for cls in classes:
        [line] = [line for line in page.splitlines() if f"`{cls.__name__}` |" in line]
        if cls.__name__ != "RemoteError":
            assert f"| {int(cls.status)} " in line and f"`{cls.code}`" in line
    assert "| 429 Too Many Requests | `rate_limited` |" in page
    assert "| 503 Service Unavailable | `queue_full` | 1 s |" in page


@pytest.mark.anyio
async def test_routes_page_lists_every_operation_a_server_documents(client: httpx.AsyncClient) -> None:
    page = reference.routes_page()
    served = (await client.get("/openapi.json")).json()["paths"]
    # The running server's document adds a typed route per model (concrete names, no "{"): not reference.
    generic = {path: ops for path, ops in served.items() if "{" in path or not path.startswith("/v2/models/")}
    assert len(generic) >= 30
    for path, operations in generic.items():
        for method, operation in operations.items():
            assert f"| {method.upper()} | `{path}` | {reference.escape(operation['summary'])} |" in page, (method, path)
    assert "| POST | `/v2/models/{model_name}/infer` |" in page


def test_cli_page_lists_every_command_and_option() -> None:
    page = reference.cli_page()
    names: list[str] = []

    def walk(name: str, command: typer.core.TyperGroup | typer.core.TyperCommand) -> None:
        names.append(name)
        section = _section(page, f"# `{name}`\n")
        if command.help:
            assert reference.escape(command.help.split("\n\n")[0]) in section
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(f"{name} {sub_name}", sub)
        if not hasattr(command, "commands"):
            for param in command.params:
                for flag in getattr(param, "opts", []):
                    if flag.startswith("-"):
                        assert f"`{flag}`" in section, (name, flag)

    walk("mlgate", typer.main.get_command(cli_app))
    assert {"mlgate serve", "mlgate models push", "mlgate keys create", "mlgate db upgrade"} <= set(names)
    assert "`--plain`" in _section(page, "# `mlgate keys create`\n")


@pytest.mark.parametrize("page", sorted([ROOT / "README.md", *DOCS.glob("**/*.md")]), ids=lambda p: p.name)
def test_pages_name_only_real_settings(page: Path) -> None:
    text = page.read_text()
    env_names = {f"MLGATE_{name.upper()}" for name in Settings.model_fields}
    unknown = set(re.findall(r"MLGATE_[A-Z0-9_]+", text)) - env_names - NOT_SETTINGS
    assert not unknown, f"{page.name} names environment variables that are not settings: {unknown}"
    for line in re.findall(r"^Settings: (.*?)\(\[reference\]", text, flags=re.MULTILINE | re.DOTALL):
        listed = re.findall(r"`(\w+)`", line)
        assert listed and set(listed) <= set(Settings.model_fields), set(listed) - set(Settings.model_fields)


def test_nav_holds_every_page_and_builds_offline() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        return []

    in_nav = set(pages(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.glob("**/*.md")}
    assert in_nav == on_disk | set(reference.PAGES), (in_nav ^ (on_disk | set(reference.PAGES)))
    assert "runtimes.md" in in_nav
    # Offline: no web fonts, and no plugin that fetches (search is built locally).
    assert config["theme"]["font"] is False
    assert config["plugins"] == ["search"]
    assert config["hooks"] == ["scripts/docs_reference.py"]
    assert config["strict"] is True


def test_architecture_page_names_every_layer_and_folder() -> None:
    text = (DOCS / "architecture.md").read_text()
    diagram, tree = re.findall(r"```text\n(.*?)```", text, flags=re.DOTALL)[:2]
    diagram_names = {name for line in diagram.splitlines() for name in re.split(r",\s*", line[:24].strip())}
    for layer in layers.LAYERS:
        for name in layer:
            assert name in diagram_names, f"layer {name} (scripts/layers.py) is not in the diagram"
    assert "ground floor" in diagram_names
    folders = sorted(p.parent.relative_to(PACKAGE) for p in PACKAGE.glob("**/__init__.py") if p.parent != PACKAGE)
    for folder in folders:
        assert f" {folder.name}/ " in tree, f"src/mlgate/{folder}/ has no line in the architecture page's tree"
