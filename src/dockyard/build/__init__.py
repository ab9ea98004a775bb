"""Builds: the Dockerfile parser and expansion (pure), `.dockerignore`, the builder.

The parser's public surface is re-exported here; see dockerfile.py (stages), instructions.py
(the typed instructions), expand.py (variables and ARG/ENV scoping), dockerignore.py. The
builder is builder.py (the build: stages in parallel, stages.py; output; tags), steps.py (one
instruction), run.py and runmounts.py (RUN's container and its --mounts), copy.py, context.py,
cache.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.build.dockerfile import Dockerfile, Stage, parse_dockerfile
    from dockyard.build.errors import DockerfileError
    from dockyard.build.expand import StageScope, expand_from, expand_stage, global_args

# Imported on first use (PEP 562): the CLI imports build.dockerignore alone, and the parser
# costs it ~140 ms of start-up.
_EXPORTS = {
    "Dockerfile": "dockerfile",
    "Stage": "dockerfile",
    "parse_dockerfile": "dockerfile",
    "DockerfileError": "errors",
    "StageScope": "expand",
    "expand_from": "expand",
    "expand_stage": "expand",
    "global_args": "expand",
}
__all__ = [
    "Dockerfile",
    "DockerfileError",
    "Stage",
    "StageScope",
    "expand_from",
    "expand_stage",
    "global_args",
    "parse_dockerfile",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
