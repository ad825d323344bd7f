"""Past one machine: the graph build as Ray tasks (:mod:`.ray`), training under torch DDP (:mod:`.ddp`).

Both take and return the same objects as the single-process code (a graph folder, a trained
model), so a pipeline moves to a cluster by changing the engine, not the code."""
