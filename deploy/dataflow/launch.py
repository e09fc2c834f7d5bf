"""Flex-template entry point: the template's parameters become `corpusgen build` arguments.

The launcher passes every parameter as --name=value; `corpusgen build` tells its own options
from Beam's (--project, --region, --temp_location, --sdk_container_image, …) and refuses any
other, so a misspelt parameter fails the launch instead of being ignored.
"""

import sys


def build_argv(args: list[str]) -> list[str]:
    """The `corpusgen build` command line for the launcher's arguments (Dataflow unless a runner is named)."""
    named = any(a == "--runner" or a.startswith("--runner=") for a in args)
    return ["corpusgen", "build", *([] if named else ["--runner=DataflowRunner"]), *args]


if __name__ == "__main__":
    from corpusgen.cli import main

    sys.argv = build_argv(sys.argv[1:])
    main()
