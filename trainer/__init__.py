"""BERT pretraining on corpusgen shards: model, data loader, training loop, export.

Imports nothing heavy at package level, so ``corpusgen --help`` stays fast.
"""
