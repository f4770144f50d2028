"""Embed: backbones (the registry, their runtimes) and the batched decode → embed pipeline."""
