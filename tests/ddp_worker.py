"""One rank of a CPU/gloo fairseq-train run that also dumps this rank's parameters at every checkpoint save
(fairseq saves checkpoints on rank 0 only), so a test can compare the ranks. Usage: same flags as fairseq-train."""
import torch
from fairseq import checkpoint_utils, distributed_utils
from fairseq_cli import train

import iterref_fairseq  # noqa: F401

_save = checkpoint_utils.save_checkpoint


def save_and_dump(cfg, trainer, epoch_itr, val_loss):
    rank = distributed_utils.get_global_rank()
    params = {k: v.detach().clone() for k, v in trainer.get_model().state_dict().items()}
    torch.save({"params": params, "num_updates": trainer.get_num_updates()}, f"{cfg.save_dir}/params_rank{rank}.pt")
    return _save(cfg, trainer, epoch_itr, val_loss)


checkpoint_utils.save_checkpoint = save_and_dump

if __name__ == "__main__":
    train.cli_main()
