"""MNIST hold-out tuning: AE pre-training with batch 128 (Adam lr 1e-3, the full training split), in chunks of
1000 iterations; after each chunk print the test AUROC of the AE and the mean validation energy, and save the
weights (`DEST_<iters>.pt`) for `exp_mnist_holdout.py --ae_cache`. This is how the AE phase of the CPU preset was chosen.

    NAE_DATA=/path/to/data OMP_NUM_THREADS=1 python scripts/pretrain_ae_trace.py 9 8000 runs/tune2/ae_d9_b128.pt [mult]

NAE_DATA must name the folder that holds MNIST (torchvision layout); nothing is downloaded.
"""
import os, sys, time, torch
from nae_nbdev.core import seed_everything
from nae_nbdev.presets import preset
from nae_nbdev.run import experiment_data, experiment_model, evaluate
from nae_nbdev.learner import make_learner

k, iters, dest = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
mult = float(sys.argv[4]) if len(sys.argv) > 4 else 0.25
root = os.environ.get('NAE_DATA')
if not root: raise SystemExit("pretrain_ae_trace.py: set NAE_DATA to the folder that holds MNIST (torchvision layout), "
                              "e.g. NAE_DATA=~/data python scripts/pretrain_ae_trace.py 9 8000 runs/ae.pt")
cfg = preset('mnist_holdout_cpu', holdout=k, data_root=os.path.expanduser(root), subset=None, mult=mult)
seed_everything(0); data = experiment_data(cfg, False); m = experiment_model(cfg, data['x_shape'])
t = time.time()
for chunk in range(iters // 1000):
    make_learner(m, data['train'], loss='ae_loss', lr=1e-3, n_iters=1000, batch_size=128, seed=chunk, progress=False, device='cpu').fit()
    with torch.no_grad(): e = float(m.energy(data['val'][:1000]).mean())
    print(chunk, 'AE', {s: round(v['auroc'], 3) for s, v in evaluate(m, data).items()}, 'E+', e, f'{time.time()-t:.0f}s', flush=True)
    torch.save(m.state_dict(), dest.replace('.pt', f'_{(chunk+1)*1000}.pt'))
