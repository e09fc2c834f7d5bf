"""``python -m trainer train --data DIR ...``; ``torchrun --nproc-per-node 8 -m trainer --data DIR ...``."""

from trainer.cli import run_module

if __name__ == "__main__":
    run_module()
