"""2-D density estimation on the 8-Gaussian mixture (paper §4.1, §6.2, Figures 3 and 5), CPU scale.

Trains each method of nbs/50_gauss8.ipynb with the library's own pieces (`presets.gauss8`,
`run.experiment_data/experiment_model`, `learner.fit_nae`, `run.density_metrics`), records TV and
KL(p_data || p_model) and the validation NLL (held-out samples, grid-normalised) every `--eval_every` steps,
reports the weights with the lowest validation NLL (and the last ones), and writes one small JSON per run,
`<out>/gauss8_<name>.json` (default out: nae_nbdev/records): settings, final metrics, the learning curve, a 64x64 density map (integers 0..999, scaled to the
map's maximum) and the last training negatives.

The chains stay in FCRes2's sampler box, (-5, 5)^2 as in the official 2-D runs (MH rejects moves that leave
it); each JSON records it as `x_bounds`. Records made before the box existed have no `x_bounds` key.

    OMP_NUM_THREADS=1 python scripts/exp_gauss8.py omi_dz1 ae_dz1 vae_dz1 ...   # or: all
"""
from __future__ import annotations
import argparse, json, time, os, math
from pathlib import Path
import numpy as np
import torch
from nae_nbdev.core import seed_everything, hardware_info
from nae_nbdev.presets import preset
from nae_nbdev.run import experiment_data, experiment_model, density_metrics, _X_KEYS
from nae_nbdev.models import make_model
from nae_nbdev.learner import fit_nae, Callback
from nae_nbdev.data import eight_gaussians_logpdf
from nae_nbdev.ebm import grid2d, log_partition

MULT = 0.125     # FCRes2 at an eighth of its width: 32 units, hidden 128 (full: 256 / 1024)
ITERS = 3000     # Adam steps of every method
# name -> (model kind, Dz, extra settings)
RUNS = {
    'omi_dz1': ('nae', 1, {}), 'omi_dz3': ('nae', 3, {}),
    'cd_dz1': ('nae_cd', 1, {}),
    # PCD three ways: B persistent chains without restarts (Tieleman), the same with 5% restarts uniform on the
    # evaluation box, and the official code's x-space replay buffer (10,000 states, 95% replay, 5% fresh noise; here uniform on the sampler box)
    'pcd_dz1': ('nae_pcd', 1, {'buffer_size': None}), 'pcdr_dz1': ('nae_pcd', 1, {'buffer_size': None, 'restart_prob': 0.05, 'init_box': (-4., 4.)}),
    'pcdb_dz1': ('nae_pcd', 1, {'buffer_size': 10_000, 'replay_prob': 0.95}),
    'ae_dz1': ('ae', 1, {}), 'ae_dz3': ('ae', 3, {}), 'vae_dz1': ('vae', 1, {}), 'vae_dz3': ('vae', 3, {}),
}

def val_nll(model, x_val, n:int=100, lo:float=-4., hi:float=4.) -> float:
    """Mean -log p_model(x_val) of held-out data, p_model = exp(-E/T) normalised on the n x n grid of [lo, hi]^2
    (a VAE: E = its nll, T = 1; an AE, which has no T: the T that fits x_val best). Uses no exact density."""
    xy, cell = grid2d(lo, hi, n)
    f = model.nll if hasattr(model, 'nll') else model.energy
    with torch.no_grad(): eg, ev = f(xy).double(), f(x_val).double()
    nll = lambda T: float((ev / T).mean() + log_partition(eg, T, cell))
    if hasattr(model, 'nll'): return nll(1.)
    if hasattr(model, 'T'): return nll(float(model.T.detach()))
    return min(nll(float(T)) for T in torch.logspace(-4, 1, 61))

class DensityCB(Callback):
    """Every `every` steps (and at the end) record TV and KL on a coarse grid (the learning curve), and the
    validation NLL of held-out samples; keep the weights with the lowest validation NLL (model selection)."""
    order = 95
    def __init__(self, every:int, x_val, n:int=100): self.every, self.n, self.x_val, self.curve, self.best = every, n, x_val, [], (math.inf, None, None)
    def _rec(self, learn):
        m = learn.model; was = m.training; m.eval()
        d = density_metrics(m, eight_gaussians_logpdf, n=self.n); v = val_nll(m, self.x_val, self.n); m.train(was)
        self.curve.append(dict(step=learn.step, tv=round(d['tv'], 4), kl=round(d['kl'], 4), T=round(d['T'], 4), val_nll=round(v, 4)))
        if v < self.best[0]: self.best = (v, learn.step, {k: t.detach().clone() for k, t in m.state_dict().items()})
        print(f"  step {learn.step}: tv {d['tv']:.3f} kl {d['kl']:.3f} T {d['T']:.3g} val nll {v:.3f}", flush=True)
    def after_step(self, learn):
        if learn.step % self.every == 0: self._rec(learn)
    def after_fit(self, learn):
        if not self.curve or self.curve[-1]['step'] != learn.step: self._rec(learn)

def settings(name:str, iters:int=ITERS, mult:float=MULT, **kw) -> dict:
    kind, dz, extra = RUNS[name]
    base = dict(model=kind, dz=dz, mult=mult, nae_iters=iters, log_every=50)
    if kind in ('ae', 'vae'):   # baselines: one phase, the AE budget, lr 1e-3; NAE settings do not apply
        base.update(ae_iters=iters, lr_ae=1e-3); kw = {k: v for k, v in kw.items() if k not in ('ae_iters', 'lr_ae')}
    return dict(cfg=preset('gauss8', **{**base, **kw}), extra=extra)

def build(cfg:dict, extra:dict, x_shape):
    "The model of `cfg`; PCD variants are built directly (the preset has no PCD settings)."
    if not extra: return experiment_model(cfg, x_shape)
    return make_model('nae_pcd', x_shape, net=cfg['net'], dz=cfg['dz'], mult=cfg['mult'], spherical=cfg['spherical'],
                      T=cfg['temp'], trainable_T=cfg['learn_temp'], gamma=cfg['gamma'], l2=cfg['l2'],
                      sampler_kw={**{k: cfg[k] for k in _X_KEYS}, **extra})

def run_one(name:str, out:Path, eval_every:int=250, run_dir=None, t_lr_mult:float=100., **kw) -> dict:
    s = settings(name, **kw); cfg, extra = s['cfg'], s['extra']
    t0 = time.time(); seed_everything(cfg['seed'])
    data = experiment_data(cfg, verbose=False)
    model = build(cfg, extra, data['x_shape'])
    dcb = DensityCB(eval_every, data['val'])
    nae_kind = cfg['model'].startswith('nae')
    print(f"{name}: {cfg['model']} dz={cfg['dz']} mult={cfg['mult']} iters={cfg['nae_iters'] if nae_kind else cfg['ae_iters']} {extra}", flush=True)
    common = dict(batch_size=cfg['batch_size'], seed=cfg['seed'], log_every=cfg['log_every'], progress=False,
                  final='last', run_dir=run_dir, overwrite=run_dir is not None, t_lr_mult=t_lr_mult)
    if nae_kind: run = fit_nae(model, data['train'], ae_iters=cfg['ae_iters'], nae_iters=cfg['nae_iters'],
                               lr_ae=cfg['lr_ae'], lr_nae=cfg['lr_nae'], nae_cbs=[dcb], **common)
    else: run = fit_nae(model, data['train'], ae_iters=0, nae_iters=cfg['ae_iters'], lr_nae=cfg['lr_ae'], nae_cbs=[dcb], **common)
    model.eval()
    last = density_metrics(model, eight_gaussians_logpdf, n=200)    # the last weights, 200 x 200 grid
    model.load_state_dict(dcb.best[2])                               # the reported weights: lowest validation NLL
    d = density_metrics(model, eight_gaussians_logpdf, n=200)
    g = density_metrics(model, eight_gaussians_logpdf, n=64, return_grid=True)
    pm = g['p_model']; img = np.rint(999 * pm / pm.max()).astype(int)
    neg = getattr(model, 'last_samples', None)
    res = dict(name=name, model=cfg['model'], dz=cfg['dz'], mult=cfg['mult'], extra=extra, x_bounds=getattr(model, 'x_bounds', None),
               iters=cfg['nae_iters'] if nae_kind else cfg['ae_iters'], lr=cfg['lr_nae'] if nae_kind else cfg['lr_ae'],
               t_lr_mult=t_lr_mult, pretrain=dict(iters=cfg['ae_iters'], lr=cfg['lr_ae']) if nae_kind else None,
               tv=round(d['tv'], 4), kl=round(d['kl'], 4), T=round(d['T'], 4), curve=dcb.curve, selected_step=dcb.best[1],
               last=dict(tv=round(last['tv'], 4), kl=round(last['kl'], 4), T=round(last['T'], 4)),
               density64=img.tolist(), time_s=round(time.time() - t0, 1), hardware=hardware_info(),
               negatives=None if neg is None else np.round(neg['x'].detach().cpu().numpy(), 2).tolist(),
               log=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in run.nae.log[::4]])
    if hasattr(model, 'sampler') and hasattr(model.sampler, 'sample_fresh'):
        res['samples'] = np.round(model.sample(256).detach().cpu().numpy(), 2).tolist()
    out.mkdir(parents=True, exist_ok=True)
    (out/f'gauss8_{name}.json').write_text(json.dumps(res))
    print(f"{name}: selected step {dcb.best[1]}: tv {res['tv']:.4f} kl {res['kl']:.4f} T {res['T']:.3g}; last: tv {last['tv']:.4f} ({res['time_s']:.0f}s)", flush=True)
    return res

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('names', nargs='+', help=f"run names ({', '.join(RUNS)}) or 'all'")
    ap.add_argument('--out', default='nae_nbdev/records')
    ap.add_argument('--iters', type=int, default=ITERS)
    ap.add_argument('--mult', type=float, default=MULT)
    ap.add_argument('--eval_every', type=int, default=250)
    ap.add_argument('--t_lr_mult', type=float, default=100., help="the temperature's lr over the network's (paper: 100)")
    ap.add_argument('--set', nargs='*', default=[], help="preset overrides key=value, e.g. ae_iters=500 lr_ae=1e-3")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    kw = {k: json.loads(v) for k, v in (s.split('=', 1) for s in a.set)}
    for n in (list(RUNS) if a.names == ['all'] else a.names):
        run_one(n, Path(a.out), a.eval_every, t_lr_mult=a.t_lr_mult, iters=a.iters, mult=a.mult, **kw)
