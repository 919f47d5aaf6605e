"""The pipeline's files: the one ragged HDF5 writer and reader, the typed stores on it (detections,
masks, pseudo GT), shard lists and the one merge of shard files."""
