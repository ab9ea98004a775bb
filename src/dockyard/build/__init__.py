"""Builds: the Dockerfile parser and expansion (pure), `.dockerignore`, the builder.

The parser's public surface is re-exported here; see dockerfile.py (stages), instructions.py
(the typed instructions), expand.py (variables and ARG/ENV scoping), dockerignore.py. The
builder is builder.py (the build: stages in parallel, stages.py; output; tags), steps.py (one
instruction), run.py and runmounts.py (RUN's container and its --mounts), copy.py, context.py,
cache.py.
"""

from __future__ import annotations

from dockyard.build.dockerfile import Dockerfile, Stage, parse_dockerfile
from dockyard.build.errors import DockerfileError
from dockyard.build.expand import StageScope, expand_from, expand_stage, global_args

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
