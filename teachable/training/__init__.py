"""Training LoRA adapters on supervision from failures: `sft` (LoRA SFT through TRL) and the
experiments built on it."""
