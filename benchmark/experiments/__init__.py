"""The training commands: ``Experiment`` types (``types``), the one job path (``jobs``), the
cells' host loop (``cells``) and resume (``resume``), and the three experiments ``popgym``,
``memory`` and ``meta_rl`` (with ``aggregate`` and ``compare`` over POPGym summaries)."""
