"""corpusgen: raw text to BERT pretraining data (NSP pairs, MLM masks, zstd Arrow shards).

The algorithm and format modules import neither Beam nor torch; ``pipelines`` wires
them into Beam transforms and ``trainer`` trains BERT on the shards.
"""

__version__ = "0.1.0"

__all__ = ["split_sentences", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import corpusgen` stays cheap for the CLI and for workers.
    if name == "split_sentences":
        from corpusgen.split import split_sentences

        return split_sentences
    raise AttributeError(f"module 'corpusgen' has no attribute {name!r}")
