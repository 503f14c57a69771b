"""Results on disk: the folder layout, atomic writes, the result schema and its validation, the run store."""
