"""Flex-template entry point: the template's parameters become `corpusgen build` arguments."""

import sys

from corpusgen.cli import main

if __name__ == "__main__":
    # Dataflow passes parameters as --name=value; `build` forwards the ones it does not know to Beam.
    sys.argv = ["corpusgen", "build", *sys.argv[1:]]
    main()
