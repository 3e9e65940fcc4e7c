"""An example s5bench plugin: an Elman RNN backbone and a tiny memory environment."""
