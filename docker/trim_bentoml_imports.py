"""Defer BentoML 1.4.40's BentoCloud imports, which a serving worker never uses.

Run at image build (docker/Dockerfile.j2), before bytecode is compiled:

    python3 trim_bentoml_imports.py [--site-packages DIR] [--check]

Why: at 0.25 vCPU start-up is CPU-bound, and BentoML 1.4.40 imports its whole
BentoCloud client at module level from three places a worker loads: the model
references (`_bentoml_sdk.models.base` and `.huggingface`, for `to_create_schema`,
which only `bentoml push` calls) and the analytics schemas (for the signed-in user's
email, read only when a cloud config exists). That client pulls in httpx_ws, wsproto
and three attrs schema modules, a sixth of a worker's start-up CPU (measured:
docs/benchmarks.md, "Container"). `_bentoml_impl.server.app` also imports the
custom-command proxy at module level, whose `from pyparsing import cast` loads
pyparsing for `typing.cast`.

Each edit moves such an import into the one function that uses it (or under
TYPE_CHECKING where only annotations name it). Nothing else changes: the same code runs
with the same arguments, only later. Each file must be either wholly original (every
edit's text found exactly once) or wholly edited, and the BentoML version must be the one
the edits were written against, so an upgrade fails the image build here instead of
shipping a half-applied edit. Running it again on an edited tree changes nothing.

Standard library only: it runs in the image before anything else is importable.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BENTOML_VERSION = "1.4.40"


class TrimError(RuntimeError):
    """The installed BentoML is not the one these edits were written against."""


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new` in one installed file (a path under site-packages)."""

    path: str
    old: str
    new: str


_CLOUD_CLIENT = "from bentoml._internal.cloud.client import RestApiClient\n"
_LABEL = "from bentoml._internal.cloud.schemas.modelschemas import LabelItemSchema\n"
_MANIFEST = "from bentoml._internal.cloud.schemas.modelschemas import ModelManifestSchema\n"
_CREATE = "from bentoml._internal.cloud.schemas.schemasv1 import CreateModelSchema\n"
_BLOCK = "    "  # the body of `if t.TYPE_CHECKING:`
_METHOD = "        "  # the body of a method


def _indented(indent: str, *imports: str) -> str:
    return "".join(indent + line for line in imports)


def _deferred(*imports: str) -> str:
    """`imports` as the first statements of a method body, then a blank line."""
    return _indented(_METHOD, *imports) + "\n"


EDITS: tuple[Edit, ...] = (
    # The model reference every service module imports (`bentoml.models.BentoModel`).
    Edit(
        "_bentoml_sdk/models/base.py",
        _CLOUD_CLIENT + _LABEL + _MANIFEST + _CREATE,
        "",
    ),
    Edit(
        "_bentoml_sdk/models/base.py",
        "if t.TYPE_CHECKING:\n",
        "if t.TYPE_CHECKING:\n" + _indented(_BLOCK, _CLOUD_CLIENT, _CREATE),
    ),
    Edit(
        "_bentoml_sdk/models/base.py",
        '        """Return the create model schema object."""\n        stored = self.stored\n',
        '        """Return the create model schema object."""\n'
        + _deferred(_LABEL, _MANIFEST, _CREATE)
        + "        stored = self.stored\n",
    ),
    # The Hugging Face model reference, imported by `_bentoml_sdk.models`.
    Edit("_bentoml_sdk/models/huggingface.py", _MANIFEST + _CREATE, ""),
    Edit(
        "_bentoml_sdk/models/huggingface.py",
        "if t.TYPE_CHECKING:\n",
        "if t.TYPE_CHECKING:\n" + _indented(_BLOCK, _CREATE),
    ),
    Edit(
        "_bentoml_sdk/models/huggingface.py",
        "    def to_create_schema(self) -> CreateModelSchema:\n        context = ModelContext(",
        "    def to_create_schema(self) -> CreateModelSchema:\n"
        + _deferred(_MANIFEST, _CREATE)
        + "        context = ModelContext(",
    ),
    # Usage analytics (off in the image: BENTOML_DO_NOT_TRACK), imported by the CLI
    # helpers every worker loads.
    Edit(
        "bentoml/_internal/utils/analytics/schemas.py",
        "from ...cloud.config import CloudClientConfig\n",
        "",
    ),
    Edit(
        "bentoml/_internal/utils/analytics/schemas.py",
        "    if cloud_config.exists():\n        return CloudClientConfig",
        "    if cloud_config.exists():\n"
        "        from ...cloud.config import CloudClientConfig\n\n"
        "        return CloudClientConfig",
    ),
    # The proxy for services with a custom command (this one has none).
    Edit(
        "_bentoml_impl/server/app.py",
        "from _bentoml_impl.server.proxy import create_proxy_app\n",
        "",
    ),
    Edit(
        "_bentoml_impl/server/app.py",
        "        if self.service.has_custom_command():\n",
        "        if self.service.has_custom_command():\n"
        "            from _bentoml_impl.server.proxy import create_proxy_app\n\n",
    ),
)


def _line_starts(text: str, snippet: str) -> list[int]:
    """Where `snippet` occurs in `text` starting at the beginning of a line."""
    found, start = [], text.find(snippet)
    while start != -1:
        if start == 0 or text[start - 1] == "\n":
            found.append(start)
        start = text.find(snippet, start + 1)
    return found


def _is_applied(text: str, edit: Edit) -> bool:
    if edit.new:
        return len(_line_starts(text, edit.new)) == 1
    return not _line_starts(text, edit.old)


def installed_version(site_packages: Path) -> str | None:
    """The version of the BentoML distribution installed in `site_packages`, if any."""
    for dist in metadata.distributions(name="bentoml", path=[str(site_packages)]):
        return dist.version
    return None


def _edit_file(path: str, text: str) -> str:
    """`text` (one file's) with every edit of that file applied, or unchanged when they
    all are already; TrimError when it is neither wholly original nor wholly edited."""
    edits = [edit for edit in EDITS if edit.path == path]
    if all(_is_applied(text, edit) for edit in edits):
        return text
    for edit in edits:  # in order: a later edit's `old` may sit next to an earlier `new`
        at = _line_starts(text, edit.old)
        if len(at) != 1 or _is_applied(text, edit):
            raise TrimError(
                f"{path}: {len(at)} matches of {edit.old.splitlines()[0].strip()!r} in a "
                f"file not wholly original nor wholly edited; re-check the edits against "
                f"BentoML {BENTOML_VERSION}'s source"
            )
        text = text[: at[0]] + edit.new + text[at[0] + len(edit.old) :]
    return text


def apply(site_packages: Path, *, check_only: bool = False) -> list[str]:
    """Apply every edit under `site_packages`; return the files changed (or to change).

    Raises TrimError, before writing anything, when the BentoML there is another
    version or a file is neither the original nor the edited one. Each file is replaced
    whole (written beside it, then renamed over it).
    """
    version = installed_version(site_packages)
    if version is None:
        raise TrimError(f"no BentoML distribution in {site_packages}")
    if version != BENTOML_VERSION:
        raise TrimError(
            f"{site_packages} holds BentoML {version}; these edits are for {BENTOML_VERSION}: "
            "re-check them against its source, then update BENTOML_VERSION"
        )
    changed: dict[str, str] = {}
    try:
        for path in dict.fromkeys(edit.path for edit in EDITS):
            text = (site_packages / path).read_text(encoding="utf-8")
            edited = _edit_file(path, text)
            if edited != text:
                changed[path] = edited
        if not check_only:
            for path, text in changed.items():
                target = site_packages / path
                staged = target.with_name(target.name + ".trim")
                staged.write_text(text, encoding="utf-8")
                os.replace(staged, target)
    except (OSError, UnicodeError) as exc:
        raise TrimError(f"{exc.__class__.__name__}: {exc}") from exc
    return list(changed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Defer BentoML's BentoCloud imports (see the module docstring)."
    )
    parser.add_argument(
        "--site-packages",
        type=Path,
        default=Path(sysconfig.get_paths()["purelib"]),
        help="where BentoML is installed (default: this interpreter's site-packages)",
    )
    parser.add_argument(
        "--check", action="store_true", help="report what would change, write nothing"
    )
    args = parser.parse_args(argv)
    try:
        changed = apply(args.site_packages, check_only=args.check)
    except TrimError as exc:
        print(exc, file=sys.stderr)
        return 1
    verb = "would change" if args.check else "changed"
    print(f"BentoML {BENTOML_VERSION} import trim: {verb} {len(changed)} file(s)")
    for path in changed:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
