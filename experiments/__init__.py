"""Bundled experiment configs (NAS YAMLs, nnictl configs, comparisons) and benchmark scripts.

Installed with the package so ``nni-hwnas configs --copy DIR`` can hand them to users who did not
clone the repository; their relative paths resolve against the copied files.
"""
