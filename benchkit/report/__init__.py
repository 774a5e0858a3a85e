"""Presentation: tables, the HTML report, comparison grids, statistics and paper tables, read from a
results folder (display attributes included), never from the plugins that produced it.
"""
