"""The plugin contract: hook specifications, interfaces, the metric lifecycle, options, specs and the
registry. It imports no implementation: built-in plugins register through the same hooks as third parties.
"""
