"""MNIST hold-out (Table 1) at CPU scale: tuning runs that also trace the test AUROC during training.

The traced test AUROC is for diagnosis only (it is how we chose the CPU-scale budget); model
selection and the reported numbers use ConstantGray validation, exactly as `run.train_run`.

    OMP_NUM_THREADS=1 python scripts/exp_mnist_holdout.py NAME --holdout 9 --set lr_nae=1e-4 nae_iters=200
"""
import argparse, json, time, os, ast
from pathlib import Path
import torch
from nae_nbdev.core import seed_everything, hardware_info
from nae_nbdev.presets import preset
from nae_nbdev.run import experiment_data, experiment_model, evaluate
from nae_nbdev.learner import fit_nae, Callback, batch_scores
from nae_nbdev.metrics import auroc

class TraceCB(Callback):
    "Every `every` steps: test AUROC of the held-out digit (on a fixed subsample) and ConstantGray validation AUROC."
    order = 95
    def __init__(self, phase, x_in, x_out, every, rows): self.phase, self.x_in, self.x_out, self.every, self.rows = phase, x_in, x_out, every, rows
    def after_step(self, learn):
        if learn.step % self.every and learn.step != learn.n_iters: return
        a = auroc(batch_scores(learn.model, self.x_in), batch_scores(learn.model, self.x_out))
        v = getattr(learn, 'val', {}) or {}
        self.rows.append(dict(phase=self.phase, step=learn.step, test_auroc=a, val_auroc=v.get('val_auroc'), t=time.time(),
                              **{k: learn.stats.get(k) for k in ('loss', 'e_pos', 'e_neg') if isinstance(getattr(learn, 'stats', None), dict)}))
        print(self.rows[-1], flush=True)

NAMES = {'a_q_lr1e-4': 'batch 32, x chain 50, NAE lr 1e-4', 'c_b16_x20_lr1e-4': 'batch 16, x chain 20, NAE lr 1e-4',
         'd_b16_x20_lr1e-3': 'batch 16, x chain 20, NAE lr 1e-3', 'e_b16_x20_lr3e-4': 'batch 16, x chain 20, NAE lr 3e-4',
         # second search (runs/tune2): the AE pre-trained longer with batch 128 (runs/tune2/pretrain.py), more NAE iterations
         'lr1e-4_n2000': 'AE 3000x32; NAE lr 1e-4', 'lr3e-4_n2000': 'AE 3000x32; NAE lr 3e-4',
         'ae3k_lr1e-4': 'AE 3000x128; NAE lr 1e-4', 'ae5k_lr3e-4_buf1250': 'AE 5000x128; NAE lr 3e-4, buffer 1250'}

def collect_tuning(logdir, dest):
    "The traces of the tuning runs (from their logs, also for runs stopped early) into one small JSON."
    out = []
    for f in sorted(Path(logdir).glob('*_d*.log')):
        name, d = f.stem.rsplit('_d', 1)
        key = next((k for k in NAMES if k.startswith(name)), None)
        if key is None: continue
        ae, tr = None, []
        for line in f.read_text().splitlines():
            if line.startswith('AE '): ae = ast.literal_eval(line[3:])[f'holdout_{d}']['auroc']
            elif line.startswith("{'phase': 'nae'"):
                r = ast.literal_eval(line); tr.append(dict(step=r['step'], test=round(r['test_auroc'], 4), val=round(r['val_auroc'], 5)))
        if tr: out.append(dict(config=NAMES[key], holdout=int(d), ae=round(ae, 4), trace=tr))
    for f in sorted(Path(logdir).glob('pretrain_d*.log')):   # scripts/pretrain_ae_trace.py: AE test AUROC every 1000 iterations
        tr = [dict(step=(int(l.split()[0]) + 1) * 1000, test=ast.literal_eval(l[l.index('{'):l.index('}') + 1])[f'holdout_{f.stem[10:]}'],
                   energy=round(float(l.split('E+ ')[1].split()[0]), 5)) for l in f.read_text().splitlines() if ' AE {' in l and l[0].isdigit()]
        if tr: out.append(dict(config='AE pre-training, batch 128', holdout=int(f.stem[10:]), ae=None, trace=tr))
    Path(dest).write_text(json.dumps(out, indent=0))
    print(f'{len(out)} tuning runs -> {dest}')

def collect(rundir, dest):
    "metrics.json (+ wall time) of every run directory <model>-h<k>-s<seed> under `rundir` into one small JSON."
    rows = []
    for d in sorted(Path(rundir).glob('*-h*-s*')):
        if not (d/'metrics.json').exists(): continue
        m, cfg = json.loads((d/'metrics.json').read_text()), json.loads((d/'config.json').read_text())
        model, k = cfg['model'], cfg['holdout']
        best = [json.loads(l) for l in (d/'log.jsonl').read_text().splitlines() if '"val_auroc"' in l and '"nae"' in l]
        rows.append(dict(model=model, holdout=k, seed=cfg['seed'], time_s=round(m['time_s'], 1),
                         ae=round(m['ae'][f'holdout_{k}']['auroc'], 4) if 'ae' in m else None,
                         nae=round(m[model][f'holdout_{k}']['auroc'], 4),
                         gray={ph: round(m[ph]['constant_gray']['auroc'], 4) for ph in m if isinstance(m[ph], dict) and 'constant_gray' in m[ph]},
                         val=[(r['step'], round(r['val_auroc'], 5)) for r in best],
                         cfg={k: cfg.get(k) for k in ('preset', 'ae_iters', 'nae_iters', 'z_steps', 'replay', 'spherical', 'dz', 'lr_nae')}))
    Path(dest).write_text(json.dumps(dict(preset=cfg and {k: v for k, v in cfg.items() if k not in ('data_root', 'holdout', 'seed')}, runs=rows), indent=0))
    print(f'{len(rows)} runs -> {dest}')

def main():
    import sys
    if sys.argv[1:2] == ['--collect']: return collect(sys.argv[2], sys.argv[3])
    if sys.argv[1:2] == ['--collect_tuning']: return collect_tuning(sys.argv[2], sys.argv[3])
    p = argparse.ArgumentParser()
    p.add_argument('name'); p.add_argument('--holdout', type=int, default=9); p.add_argument('--preset', default='mnist_holdout_cpu')
    p.add_argument('--set', nargs='*', default=[]); p.add_argument('--trace', type=int, default=50)
    p.add_argument('--out', default='runs/tune'); p.add_argument('--ae_cache', default=None)
    a = p.parse_args()
    kw = {}
    for s in a.set:
        k, v = s.split('=', 1)
        try: v = ast.literal_eval(v)
        except Exception: pass
        kw[k] = v
    cfg = preset(a.preset, holdout=a.holdout, data_root=os.environ.get('NAE_DATA'), **kw)
    t0 = time.time(); seed_everything(cfg['seed'])
    data = experiment_data(cfg, False)
    model = experiment_model(cfg, data['x_shape'])
    g = torch.Generator().manual_seed(0)
    xin = data['test_in'][torch.randperm(len(data['test_in']), generator=g)[:2000]]
    xout = data['test_out'][f'holdout_{a.holdout}']
    rows = []
    valid = (data['val'], data['val_ood'])
    cache = Path(a.out, f"ae_d{a.holdout}_m{cfg['mult']}_dz{cfg['dz']}_{cfg['ae_iters']}_{cfg['lr_ae']}_b{cfg['batch_size']}_s{cfg['seed']}_n{cfg['subset']}.pt")
    if a.ae_cache: cache = Path(a.ae_cache)
    if cache.exists(): model.load_state_dict(torch.load(cache, weights_only=True))
    else:  # phase 1 once per (digit, net, AE budget), without validation, then cached for the NAE tuning runs
        fit_nae(model, data['train'], ae_iters=cfg['ae_iters'], nae_iters=0, lr_ae=cfg['lr_ae'], batch_size=cfg['batch_size'],
                seed=cfg['seed'], progress=False, final='last', ae_cbs=[TraceCB('ae', xin, xout, cfg['ae_iters'], rows)])
        Path(a.out).mkdir(parents=True, exist_ok=True); torch.save(model.state_dict(), cache)
    a_ae = evaluate(model, data); rows.append(dict(phase='ae', step=cfg['ae_iters'], test_full=a_ae)); print('AE', a_ae, flush=True)
    seed_everything(cfg['seed'] + 1)
    run = fit_nae(model, data['train'], valid=valid, ae_iters=0, nae_iters=cfg['nae_iters'],
                  lr_ae=cfg['lr_ae'], lr_nae=cfg['lr_nae'], batch_size=cfg['batch_size'], seed=cfg['seed'],
                  val_every=cfg['val_every'], progress=False, final='best',
                  nae_cbs=[TraceCB('nae', xin, xout, a.trace, rows)])
    m = evaluate(model, data)
    res = dict(name=a.name, holdout=a.holdout, overrides=kw, trace=rows, best_step=run.nae.cbs and next(c for c in run.nae.cbs if type(c).__name__ == 'ValidationCB').best_step,
               final_test=m, time_s=time.time() - t0, hardware=hardware_info())
    Path(a.out).mkdir(parents=True, exist_ok=True)
    Path(a.out, f'{a.name}_d{a.holdout}.json').write_text(json.dumps(res, indent=1, default=str))
    print('FINAL', a.name, a.holdout, {k: round(v['auroc'], 3) for k, v in m.items()}, 'best_step', res['best_step'], f"{res['time_s']:.0f}s")

if __name__ == '__main__': main()
