"""hol's Hydra configs (``conf/``), installed as the package ``hol.conf`` so ``hol train`` finds them."""
