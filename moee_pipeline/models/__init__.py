"""Stage 1 support: loading a transformers MoE (quantized or not), finding its routers, and the
catalog of known models. Needs torch; scoring never imports it."""
