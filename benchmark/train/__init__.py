"""Training: the one PPO loop (``ppo``, ``losses``), the host loop around its compiled chunks
(``loop``), checkpoints, devices and sharding. Nothing here knows an experiment."""
