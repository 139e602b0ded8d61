"""dema: Decision Mamba (DeMa) for offline reinforcement learning.

Dimension letters used in shape comments throughout the package:

    B  batch                     K  context length in environment steps
    T  tokens in a sequence      L  sequence length seen by a mixer (= T)
    S  state (observation) size  A  action size (continuous) or count (discrete)
    E  embedding width           D  model width (d_model)
    Di inner width of a Mamba    N  SSM state size (d_state)
    R  dt_rank                   W  convolution width (d_conv)
"""

__version__ = "0.1.0"
