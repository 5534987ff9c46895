"""The dependency rule of mlgate's packages, written out as ruff configuration (TID251, banned-api).

``LAYERS`` lists mlgate's layers from the top (the CLI) to the bottom (the ground-floor modules). A module may
import from its own layer and from any layer below it, never from one above: each package folder gets a
``.ruff.toml`` that extends the project's ``pyproject.toml`` and bans every package above it (and FastAPI and
Starlette outside the HTTP layers), so an arrow back up fails ``make lint``.

    python scripts/layers.py          # write the .ruff.toml files
    python scripts/layers.py --check  # exit 1 if one is missing or stale (make lint runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mlgate"

# Top to bottom. Names are packages (folders) or top-level modules; the ground floor (errors, types, settings,
# logs, metrics, datatypes, access, memory) is everything not named here.
LAYERS: list[tuple[str, ...]] = [
    ("cli",),
    ("server",),
    ("app", "lifespan"),
    ("web",),
    ("edge",),
    ("api",),
    ("protocols",),
    ("jobs",),
    ("catalog",),
    ("auth",),
    ("inference",),
    ("predlog", "ratelimit"),
    ("workers",),
    ("runtimes",),
    ("codecs",),
    ("model",),
    ("db",),
]
HTTP_LAYERS = {"web", "edge", "api", "protocols"}
HTTP_FRAMEWORKS = ("fastapi", "starlette")
MODULES = {"server", "app", "lifespan"}  # top-level modules rather than folders

HEADER = "# Written by scripts/layers.py from its LAYERS: edit that list, then run it. Do not edit by hand.\n"


def banned_for(name: str | None) -> dict[str, str]:
    """The banned-api table for a package (``None``: the ground-floor modules of ``mlgate/`` itself)."""
    index = len(LAYERS) if name is None else next(i for i, layer in enumerate(LAYERS) if name in layer)
    banned = {f"mlgate.{above}": f"mlgate.{above} is a layer above {'the ground floor' if name is None else name}"
              " (docs/architecture.md)" for layer in LAYERS[:index] for above in layer}
    if name not in HTTP_LAYERS:
        for framework in HTTP_FRAMEWORKS:
            banned[framework] = "Only mlgate.protocols, edge, api, web and app talk to the HTTP framework."
    return banned


def render(name: str | None, depth: int) -> str:
    lines = [HEADER, f'extend = "{"../" * depth}pyproject.toml"', ""]
    if name is None:
        lines += ["[lint.per-file-ignores]",
                  '# The top of the tree, not the ground floor: app, lifespan and server wire everything together.',
                  '"app.py" = ["TID251"]', '"lifespan.py" = ["TID251"]', '"server.py" = ["TID251"]',
                  '"__init__.py" = ["TID251"]', '"__main__.py" = ["TID251"]', ""]
    lines.append("[lint.flake8-tidy-imports.banned-api]")
    lines += [f'"{key}".msg = "{msg}"' for key, msg in sorted(banned_for(name).items())]
    return "\n".join(lines) + "\n"


def expected() -> dict[Path, str]:
    files = {PACKAGE / ".ruff.toml": render(None, 2)}
    for layer in LAYERS:
        for name in layer:
            folder = PACKAGE / name
            if name not in MODULES and folder.is_dir():
                files[folder / ".ruff.toml"] = render(name, 3)
    return files


def main(argv: list[str]) -> int:
    stale = [path for path, text in expected().items() if not path.exists() or path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"stale or missing: {path.relative_to(PACKAGE.parent.parent)} (run python scripts/layers.py)")
        return 1 if stale else 0
    for path in stale:
        path.write_text(expected()[path])
        print(f"wrote {path.relative_to(PACKAGE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
