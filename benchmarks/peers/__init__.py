"""Other serving stacks, each in its own virtual environment, driven with the same bodies as seqserve."""
