"""Training of the built-in tiny model on a synthetic video world (``python -m engine.train``).

world (clips + captions + ground truth) -> vae -> teacher (rectified flow, with the text
encoder) -> student (few-step, for the rCM sampler) -> sla (fine-tune + merge) -> export in
the layouts ``engine.loading`` reads.  Nothing here is imported by the engine at run time.
"""
