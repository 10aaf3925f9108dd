"""Weight sharing: one super-network per space, differentiable expected latency, and the searches on them.

- :mod:`.supernet`: every sample of a space is a slice of one set of shared weights (OFA/SPOS style);
- :mod:`.supernet_training`: uniform or sandwich path sampling, and scoring a sample in milliseconds;
- :mod:`.expected_latency`: the latency table as a differentiable function of choice probabilities;
- :mod:`.conditioned`: the complexity-conditioned search (a hyper-network from a budget to logits).
"""
