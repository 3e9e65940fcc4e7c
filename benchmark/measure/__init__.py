"""Measurements beside training: the speed sweep (``speed``, timed by ``timing``), environment
throughput (``env_bench``), the Memory-contract checks (``conformance``) and the paper's
accelerator reference (``reference``)."""
