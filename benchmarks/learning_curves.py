"""Learning curves of the training protocol (nearsight.training.curves): held-out error against the number of
training trajectories, for BP at three widths and the message-passing network, on the same external held-out files.

    python benchmarks/learning_curves.py --config configs/train/triangular-120.yaml --out runs/curves-tri120 \
        --fractions 0.125 0.25 0.5 1 --device cuda --only 0/4      # and 1/4, 2/4, 3/4: one process each
    python benchmarks/learning_curves.py --config configs/train/triangular-120.yaml --out runs/curves-tri120 --collect

``--list`` prints the plan; ``--variants FILE.yaml`` ({name: {config overrides}}) replaces the default variants.
"""
import sys

from nearsight.training.curves import main

if __name__ == "__main__":
    sys.exit(main())
