"""moee-pipeline: MoE router weights as embeddings, extracted once and scored on MTEB."""

__version__ = "0.1.0"
