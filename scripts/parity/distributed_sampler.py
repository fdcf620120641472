"""Indices torch.utils.data.DistributedSampler gives each rank, for the Rust parity test.

Prints one JSON object per case: the case's parameters and, for every rank, its indices after
set_epoch(epoch). Cases are read as JSON from argv[1]: a list of
{"n", "world", "seed", "epoch", "shuffle", "drop_last"}.
"""
import json
import sys

import torch
from torch.utils.data import DistributedSampler


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def main():
    cases = json.loads(sys.argv[1])
    for c in cases:
        ranks = []
        for rank in range(c["world"]):
            s = DistributedSampler(
                Sized(c["n"]),
                num_replicas=c["world"],
                rank=rank,
                shuffle=c["shuffle"],
                seed=c["seed"],
                drop_last=c["drop_last"],
            )
            s.set_epoch(c["epoch"])
            ranks.append(list(iter(s)))
        print(json.dumps({**c, "ranks": ranks}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
