"""StructADMM: structured pruning as constrained training (see docs/admm.md)."""
