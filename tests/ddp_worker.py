"""One process of a distributed test run (start it with torchrun, or alone for one process).

Trains a small NAE on the digits with a `Learner` + `DDPCB` and saves, per rank, the weights, the
replay buffer, the logged records and the weights' largest difference from rank 0's to OUT/rank<r>.pt.
"""
import sys, argparse
from pathlib import Path
import torch
from nae_nbdev.distributed import init_distributed, ddp_cbs, max_weight_diff, finish_distributed
from nae_nbdev.learner import Learner, Batches, LogCB, Callback, dist_rank
from nae_nbdev.resilience import CheckpointCB, GuardCB
from nae_nbdev.models import make_model
from nae_nbdev.data import load_digits

p = argparse.ArgumentParser()
p.add_argument('--out', required=True)
p.add_argument('--bs', type=int, default=16)
p.add_argument('--iters', type=int, default=1)
p.add_argument('--sampler', choices=['cd0', 'omi'], default='cd0')  # cd0: CD chains without noise (deterministic negatives)
p.add_argument('--opt', choices=['sgd', 'adam'], default='sgd')
p.add_argument('--nan_at', type=int, default=0)   # >0: rank 1 alone reports a NaN energy at this step (a divergence on one rank)
a = p.parse_args()

class NaNOnRank1(Callback):
    "Make rank 1's E(x-) NaN once, at step `a.nan_at`, before DDPCB averages the stats."
    order = -40
    def __init__(self): self.done = False
    def after_loss(self, learn):
        if learn.rank == 1 and learn.step + 1 == a.nan_at and not self.done: learn.stats['e_neg'] = float('nan'); self.done = True

dev = init_distributed('cpu')
x, _ = load_digits('train', seed=0)
torch.manual_seed(0)   # the same initial weights on every rank
if a.sampler == 'cd0':
    model = make_model('nae_cd', x.shape[1:], net='fc', dz=8, sampler_kw=dict(x_steps=3, x_noise=0., x_step_size=1.))
else:
    model = make_model('nae', x.shape[1:], net='fc', dz=8, sampler_kw=dict(x_steps=3, z_steps=3, buffer_size=256))
w0 = {k: v.clone() for k, v in model.state_dict().items()}
learn = Learner(model, Batches(x, a.bs, seed=3), lr=1. if a.opt == 'sgd' else 1e-3, n_iters=a.iters, device=dev, seed=5,
                opt_func=torch.optim.SGD if a.opt == 'sgd' else torch.optim.Adam, cbs=[LogCB(every=1), *ddp_cbs()] + ([CheckpointCB(every=2), GuardCB(), NaNOnRank1()] if a.nan_at else []))
learn.fit()
sampler_sd = model.sampler.state_dict()
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
guard = next((c for c in learn.cbs if isinstance(c, GuardCB)), None)
torch.save(dict(events=guard.events if guard else [], step=learn.step, w=model.state_dict(), w0=w0, sampler=sampler_sd, log=learn.log, diff=max_weight_diff(model),
                first=learn.batches.order(0)[:a.bs]), out/f'rank{dist_rank()}.pt')
finish_distributed()
