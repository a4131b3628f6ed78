#!/usr/bin/env python
"""Make the README/index figure from a real run of the default preset (`nae_train` with no arguments).

It trains the digits_holdout preset (digit 9 held out) in memory, keeps a copy of the model after
the AE phase, then finishes the NAE phase, and draws: inputs (inliers, held-out 9s, outliers),
their AE and NAE reconstructions, and the score histograms. Writes nbs/images/readme.png and
nbs/images/readme.json (the numbers and the time it took).
"""
import copy, json, time, sys
from pathlib import Path
import torch, numpy as np
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from nae_nbdev.core import seed_everything, hardware_info
from nae_nbdev.presets import preset
from nae_nbdev.run import experiment_data, experiment_model, evaluate
from nae_nbdev.learner import batch_scores
from nae_nbdev.training import fit_nae
from nae_nbdev.data import half_images

root = Path(__file__).resolve().parents[1]
cfg = preset('digits_holdout')
t0 = time.time()
seed_everything(cfg['seed'])
data = experiment_data(cfg, verbose=False)
model = experiment_model(cfg, data['x_shape'])
common = dict(valid=(data['val'], data['val_ood']), batch_size=cfg['batch_size'], seed=cfg['seed'], progress=False,
              val_every=cfg['val_every'], lr_ae=cfg['lr_ae'], lr_nae=cfg['lr_nae'])
fit_nae(model, data['train'], ae_iters=cfg['ae_iters'], nae_iters=0, final='last', **common)
ae = copy.deepcopy(model)
fit_nae(model, data['train'], ae_iters=0, nae_iters=cfg['nae_iters'], **common)
secs = time.time() - t0
rep = {'AE': evaluate(ae, data), 'NAE': evaluate(model, data)}

g = torch.Generator().manual_seed(0)
pick = lambda x, k: x[torch.randperm(len(x), generator=g)[:k]]
cols = [('inlier', pick(data['test_in'], 3)), ('held-out 9', pick(data['test_out']['holdout_9'], 3)),
        ('constant', data['test_out']['constant_gray'][:2]), ('half digit', half_images(pick(data['test_in'], 2), seed=1))]
xs = torch.cat([c[1] for c in cols]); labels = sum([[n] * len(c) for n, c in cols], [])
with torch.no_grad(): rec = {'AE': ae.decode(ae.encode(xs)).view_as(xs), 'NAE': model.decode(model.encode(xs)).view_as(xs)}
e = {k: m.score(xs) for k, m in (('AE', ae), ('NAE', model))}

fig = plt.figure(figsize=(11, 6.2))
gs = fig.add_gridspec(5, len(xs), height_ratios=[1, 1, 1, 0.35, 2.6])
for j in range(len(xs)):
    for i, (row, img) in enumerate([('input', xs), ('AE', rec['AE']), ('NAE', rec['NAE'])]):
        ax = fig.add_subplot(gs[i, j]); ax.imshow(img[j, 0], cmap='gray', vmin=0, vmax=1); ax.set_xticks([]); ax.set_yticks([])
        if i == 0: ax.set_title(labels[j], fontsize=7)
        else: ax.set_xlabel(f"E={e[row][j]:.3f}", fontsize=6)
        if j == 0: ax.set_ylabel(row, fontsize=9)
for k, (name, m) in enumerate((('AE', ae), ('NAE', model))):
    ax = fig.add_subplot(gs[4, k * len(xs) // 2: (k + 1) * len(xs) // 2 - (1 if k == 0 else 0)])
    s_in = batch_scores(m, data['test_in']).numpy(); s_9 = batch_scores(m, data['test_out']['holdout_9']).numpy()
    bins = np.linspace(np.log10(min(s_in.min(), s_9.min())), np.log10(max(s_in.max(), s_9.max())), 40)
    ax.hist(np.log10(s_in), bins, alpha=.6, density=True, label='inliers (0-8)'); ax.hist(np.log10(s_9), bins, alpha=.6, density=True, label='held-out 9')
    ax.set_yticks([]); ax.set_xlabel('log10 energy (per-pixel reconstruction error)', fontsize=8)
    ax.set_title(f"{name}: AUROC {rep[name]['holdout_9']['auroc']:.3f}", fontsize=10); ax.legend(fontsize=7)
fig.suptitle(f"nae_train (default preset): sklearn digits, 9 held out — {secs:.0f} s on {hardware_info().split(', torch')[0]}", fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.95))
out = root/'nbs'/'images'
fig.savefig(out/'readme.png', dpi=110)
summary = dict(auroc={k: {s: round(v['auroc'], 4) for s, v in r.items()} for k, r in rep.items()}, seconds=round(secs, 1),
               hardware=hardware_info(), date=time.strftime('%Y-%m-%d'))
(out/'readme.json').write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
