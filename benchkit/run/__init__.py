"""Planning and execution: a run is checked and planned as plain data, cut into shard tasks that an
executor runs, scored where the images are, and merged by the one process that writes.
"""
