"""Shared pieces of the training scripts (training/ctd.py, training/lma.py).

Data flow: video table (`data.VideoTable`: folder / manifest / Hub dataset) -> clip datasets decoded in DataLoader
workers (`data.CTDClipDataset`, `data.VideoConversationDataset`) -> the loop in the script, built from
`config` (YAML + CLI), `models` (teacher, student, LiteFrame + LoRA), `losses.ctd_loss`, `optim` (AdamW + warm-up +
cosine), `loop` (Accelerator, resumable micro-batch stream, timers), `checkpoint` (save_state / latest / resume),
`tracking` (metrics.csv + Accelerate tracker) and `cache` (teacher targets as safetensors shards).
`bench` and `plot` are the `liteframe bench train` and `liteframe train plot` commands; `synthetic` writes
generated videos and video-QA records for tests and demos.

Modules are imported on use (`from liteframe_hf.training.losses import ctd_loss`); importing this package alone
loads nothing heavy.
"""
