"""The results folder and other files on disk: atomic writes, the lock and the manifest, cell and
shard records keyed by their task key, checkpoints, dataset files, and reading results into pandas.
"""
