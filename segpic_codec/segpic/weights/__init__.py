"""SegPIC's weights: a weights folder on disk (`folder`: safetensors shards and
a manifest), fixed-rate folders of one network per quality (`levels`), building
a folder's model (`loading`), and the authors' checkpoints: their widths
(`authors_config`), their keys mapped onto ours (`authors`), the import
(`import_weights`) and the intermediates of their test vector (`trace`).
This `__init__` imports nothing."""
