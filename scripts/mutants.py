"""Mutation testing: plant plausible one-line bugs, one at a time, and check that the tests catch each.

Each mutant replaces one exact piece of text in one module of `nae_nbdev`, and the same text in the
exported cells of the notebook that module is made from (the notebook's own tests run the code of its
cells, not the module; other notebooks and pytest import the module). The text must occur exactly once
in each, so a stale mutant fails loudly instead of silently testing nothing. The mutants are applied in
a scratch copy of the repository, never in the working tree: the copy is made once, each mutant is
written into it, the owning notebook's tests run there (`nbdev_test --path`, with the copy first on
PYTHONPATH), and both files are restored before the next mutant. A mutant is *caught* when some test
fails (a non-zero exit), and *survives* when every test passes. A surviving mutant is a missing test:
fix it by writing the test, never by deleting the mutant.

    python scripts/mutants.py                    # all mutants, one worker; prints survivors, caught/total
    python scripts/mutants.py --only samplers    # the mutants of one module (or ids: --only s07 m03)
    python scripts/mutants.py --list             # the list, without running anything
    python scripts/mutants.py --json nae_nbdev/records/mutants.json   # also record the result

This is the slow tier (the time per mutant of the last run is in its record and in nbs/39_mutants.ipynb). It is not part of CI.
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys, tempfile, time, platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

@dataclass
class Mutant:
    id: str           # short id, e.g. 's07'
    module: str       # module of nae_nbdev, e.g. 'samplers'
    kind: str         # the kind of bug (the categories of the tests that should catch it)
    old: str          # exact text in nae_nbdev/<module>.py (must occur exactly once)
    new: str          # its replacement
    why: str          # what the bug is, in words
    tests: list = field(default_factory=list)   # extra tests: notebook names or 'tests/test_x.py'

M = Mutant
MUTANTS = [
    # --- ebm: the Gibbs density, quadrature, the NAE loss
    M('e01', 'ebm', 'quadrature', '+ math.log(cell)', '- math.log(cell)', 'log Omega subtracts the log cell volume'),
    M('e02', 'ebm', 'temperature', 'torch.logsumexp(-energies.reshape(-1) / T, 0)', 'torch.logsumexp(-energies.reshape(-1), 0)', 'log_partition ignores T'),
    M('e03', 'ebm', 'density_on_grid at T != 1', 'torch.exp(-e / T - log_partition(e, T, cell))', 'torch.exp(-e - log_partition(e, 1., cell))', 'density_on_grid ignores T'),
    M('e04', 'ebm', 'loss', 'loss = (ep - en) / T + gamma * (e_neg**2).mean()', 'loss = (ep - en) / T + gamma * (e_pos**2).mean()', 'gamma term on the positives'),
    M('e05', 'ebm', 'loss', 'loss = (ep - en) / T + gamma', 'loss = (ep - en) * T + gamma', 'energy difference times T'),
    M('e06', 'ebm', 'loss', 'return sum((p**2).sum() for p in ps)', 'return sum(p.abs().sum() for p in ps)', 'L1 instead of squared L2'),
    M('e07', 'ebm', 'temperature', 'nn.Parameter(torch.tensor(math.log(T)), requires_grad=trainable)', 'nn.Parameter(torch.tensor(float(T)), requires_grad=trainable)', 'stores T, not log T'),
    M('e08', 'ebm', 'exact samples', 'return x[idx] + (u - 0.5) * h', 'return x[idx] + u * h', 'grid samples shifted by half a cell'),
    M('e09', 'ebm', 'exact NLL', 'return (energy_fn(x.to(dev)).mean() / T + log_partition', 'return (energy_fn(x.to(dev)).mean() + log_partition', 'NLL without 1/T'),
    # --- linear: the linear NAE as a Gaussian
    M('l01', 'linear', 'closed form', 'def precision(self) -> Tensor: A = self.A(); return 2 * A @ A / self.T', 'def precision(self) -> Tensor: A = self.A(); return A @ A / self.T', 'precision without the 2'),
    M('l02', 'linear', 'closed form', 'torch.log(math.pi * self.T)', 'torch.log(2 * math.pi * self.T)', 'log Omega with 2 pi T'),
    M('l03', 'linear', 'exact samples', 'return (self.T / 2).sqrt() * torch.linalg.solve', 'return self.T.sqrt() * torch.linalg.solve', 'samples with variance T A^-2'),
    M('l04', 'linear', 'loss', 'gamma=0.)', 'gamma=1.)', 'the gamma term in the ML fit'),
    M('l05', 'linear', 'energy', 'return ((x - self.decode(self.encode(x)))**2).sum(1)', 'return ((x - self.decode(self.encode(x)))**2).mean(1)', 'mean instead of summed error'),
    # --- langevin (s01-s11, s22, s23): Langevin, MALA, box, sphere; samplers: buffer, CD/PCD/OMI
    M('s01', 'langevin', 'clipping', 'if value is not None: g = g.clamp(-value, value)', 'if value is not None: g = g.clamp(-value, 2 * value)', 'asymmetric elementwise clip'),
    M('s02', 'langevin', 'clipping', "g = g * _bview((norm / n).clamp(max=1.), g)", "g = g * _bview(norm / n, g)", 'norm clip also scales small gradients up'),
    M('s03', 'langevin', 'temperature', 'return x - step_size * g / T', 'return x - step_size * g', 'drift without 1/T'),
    M('s04', 'langevin', 'annealing + MH', '/ (2 * s * s)', '/ (2 * noise * noise)', 'MH ratio with the un-annealed sigma'),
    M('s05', 'langevin', 'MH', 'log_a = (E - Ep) / T +', 'log_a = (E - Ep) +', 'MH ratio without T'),
    M('s06', 'langevin', 'clipping + MH', '_sq(x - drift(xp, gp))', '_sq(x - (xp - step_size * gp / T))', 'reverse drift unclipped'),
    M('s07', 'langevin', 'box under MH', 'if reject: acc = acc & inside(xp)', 'pass', 'MH ignores the box'),
    M('s08', 'langevin', 'annealing', 's = noise / (1 + k) if anneal else noise', 's = noise', 'annealing ignored'),
    M('s09', 'langevin', 'tangent projection', 'if tangent: g = g - _bview', 'if False: g = g - _bview', 'tangent projection off'),
    M('s10', 'langevin', 'tangent projection', 'if tangent: g = g - _bview((g * x).flatten(1).sum(1), x) * x', 'if tangent: g = g + _bview((g * x).flatten(1).sum(1), x) * x', 'tangent projection with the wrong sign'),
    M('s11', 'langevin', 'sphere', 'if spherical: xp = to_sphere(xp)', 'pass', 'spherical chain not renormalised'),
    M('s12', 'samplers', 'buffer', 'x = x[-self.capacity:].to(self.data.dtype)', 'x = x[:self.capacity].to(self.data.dtype)', 'an oversized push keeps the oldest'),
    M('s13', 'samplers', 'buffer', 'm = _rand((n,), x.device, generator=generator) < self.replay_prob', 'm = _rand((n,), x.device, generator=generator) > self.replay_prob', 'replays 5% instead of 95%'),
    M('s14', 'samplers', 'buffer contents', 'if replay: self.buffer.push(z)', 'if replay: self.buffer.push(z0)', 'OMI stores the chain starts'),
    M('s15', 'samplers', 'OMI', 'x0 = model.decode(rz.x)', 'x0 = model.decode(z0)', 'visible chain starts from f_d(z0)'),
    M('s16', 'samplers', 'OMI', 'rz = langevin(H, z0, n_steps=z_steps,', 'rz = langevin(H, z0, n_steps=0,', 'latent chain skipped'),
    M('s17', 'samplers', 'OMI', 'dict(x=rx.x, x0=x0, z0=z0, z=z).items()', 'dict(x=rx.x, x0=x0, z0=z0, z=z0).items()', 'OMI reports z0 as z'),
    M('s18', 'samplers', 'PCD', 'self.chains = torch.cat([r.x, self.chains[B:]])', 'self.chains = torch.cat([x0, self.chains[B:]])', 'PCD chains not advanced'),
    M('s19', 'samplers', 'buffer contents', 'self.buffer.push(r.x)', 'self.buffer.push(x0)', 'PCD buffer stores the starts'),
    M('s20', 'samplers', 'CD', 'x0 = x_pos.detach()', 'x0 = torch.rand_like(x_pos)', 'CD starts from noise'),
    M('s21', 'samplers', 'temperature', "T = self.x_T if self.x_T is not None else getattr(model, 'T', 1.)", 'T = 1.', "visible chain ignores the model's T"),
    M('s22', 'langevin', 'gradient', 'g, = torch.autograd.grad(E.sum(), x)', 'g, = torch.autograd.grad(E.mean(), x)', 'gradient divided by the batch size'),
    M('s23', 'langevin', 'parameter gradients', 'for p in ps: p.requires_grad_(True)', 'pass', 'frozen() does not restore requires_grad'),
    M('s24', 'samplers', 'Temperature of the latent chain', "Tz = self.z_T if self.z_T is not None else getattr(model, 'T', 1.)", 'Tz = 1.', "latent chain ignores the model's T"),
    M('s25', 'samplers', 'OMI box', "if getattr(model, 'x_bounds', None) is not None: x0 = x0.clamp(*model.x_bounds)", 'pass', 'visible chain starts outside the box'),
    M('s26', 'samplers', 'PCD noise', "if self.init_dist == 'gaussian': box = None", "if False: box = None", "init_dist='gaussian' draws uniform noise"),
    # --- models: the NAE and the baselines' maths
    M('m01', 'models', 'energy', 'return (self.decoder(z) - x).square().flatten(1).mean(1), z', 'return (self.decoder(z) - x).square().flatten(1).sum(1), z', 'energy not divided by D'),
    M('m02', 'models', 'DAE corruption', 'self.decode(self.encode(x + self.sigma * torch.randn_like(x)))', 'self.decode(self.encode(x))', 'DAE without corruption'),
    M('m03', 'models', 'VAE KL', 'kl = 0.5 * (mu.square()', 'kl = (mu.square()', 'KL without the 1/2'),
    M('m04', 'models', 'Gaussian log-density', 'return (-0.5 * (_LOG2PI', 'return (-(_LOG2PI', 'log N without the 1/2'),
    M('m05', 'models', 'importance weights', '+ _log_normal(z, 0., 0.) - _log_normal(z, mu, logvar))', '+ _log_normal(z, 0., 0.))', 'importance weights without -log q'),
    M('m06', 'models', 'importance weights', 'return -(torch.logsumexp(torch.stack(lw), 0) - math.log(self.n_is))', 'return -torch.logsumexp(torch.stack(lw), 0)', 'IS estimate without -log K'),
    M('m07', 'models', 'VAE', 'z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)\n        rec =', 'z = mu + logvar.exp() * torch.randn_like(mu)\n        rec =', 'reparameterisation with the variance as std'),
    M('m08', 'models', 'MMD', '(kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))', 'kaa.sum() / (n * n)', 'biased MMD (V-statistic)'),
    M('m09', 'models', 'MMD', '- 2 * kab.mean())', '- kab.mean())', 'MMD cross term without the 2'),
    M('m10', 'models', 'NAE loss', 'nae_loss(e[:len(x)], e[len(x):], self.temperature', 'nae_loss(e[len(x):], e[:len(x)], self.temperature', 'positives and negatives swapped'),
    M('m11', 'models', 'encoder L2 in pre-training', 'if self.ae_l2 and self.l2:', 'if False:', 'ae_l2 ignored'),
    M('m12', 'models', 'PCD', "_SAMPLER_DEFAULTS = {'nae_pcd': dict(buffer_size=10_000, replay_prob=0.95)}", '_SAMPLER_DEFAULTS = {}', "nae_pcd is not the paper's PCD"),
    M('m13', 'models', 'exact log-density', 'return self.log_prob_unnorm(x) - self.log_partition(lo, hi, n)', 'return self.log_prob_unnorm(x) + self.log_partition(lo, hi, n)', 'log p adds log Omega'),
    M('m14', 'models', 'sphere', 'return to_sphere(z) if self.spherical else z', 'return z', 'codes never projected onto the sphere'),
    M('m15', 'models', 'density box', "lo, hi = density_box(self, lo, hi)", "lo, hi = (-4. if lo is None else lo), (4. if hi is None else hi)", 'log_partition on [-4, 4] whatever box the samplers target'),
    # --- nets: the 2-D box
    M('n01', 'nets', 'box', 'if not bounded and box is not None: dec.x_bounds = tuple(float(b) for b in box)', 'pass', 'FCRes2 without a sampler box'),
    # --- metrics
    M('x01', 'metrics', 'AUROC', 'return float(roc_auc_score(y, s))', 'return float(roc_auc_score(y, -s))', 'AUROC with the score sign flipped'),
    M('x02', 'metrics', 'AUPR', 'return float(average_precision_score(1 - y, -s))', 'return float(average_precision_score(1 - y, s))', 'AUPR-IN without negating the score'),
    M('x03', 'metrics', 'FPR@95', 'k = max(1, math.ceil(tpr*len(so) - 1e-9))', 'k = max(1, math.floor(tpr*len(so)))', 'FPR@95 threshold one outlier short'),
    M('x04', 'metrics', 'FPR@95', 'return float((si >= t).mean())', 'return float((si > t).mean())', 'FPR@95 misses inliers tied with the threshold'),
    M('x05', 'metrics', 'TV', 'return float(0.5*np.abs(', 'return float(np.abs(', 'TV without the 1/2'),
    M('x06', 'metrics', 'KL', 'return float((p[m]*(np.log(p[m]) - np.log(q[m]))).sum())', 'return float((q[m]*(np.log(p[m]) - np.log(q[m]))).sum())', 'KL weighted by q'),
    # --- data (40_data)
    M('d01', 'data', 'splits', 'return perm[n_val:].sort().values, perm[:n_val].sort().values', 'return perm.sort().values, perm[:n_val].sort().values', 'validation samples also in train'),
    M('d02', 'data', 'hold-out', 'return X[~out], y[~out]', 'return X[out], y[out]', 'keeps only the held-out class'),
    M('d03', 'data', 'dequantisation', 'return x*(255/256) + u.to(x.device, x.dtype)/256', 'return x + u.to(x.device, x.dtype)/256', 'dequantised images leave [0, 1]'),
    M('d04', 'data', '8 Gaussians', 'EIGHT_GAUSSIANS_STD = 2**.5/4', 'EIGHT_GAUSSIANS_STD = 2**.5/2', 'components twice as wide'),
    M('d05', 'data', 'HalfMNIST', 'rows = torch.arange(x.shape[-2]) >= x.shape[-2]//2', 'rows = torch.arange(x.shape[-2]) > x.shape[-2]//2', 'HalfMNIST keeps one row too many'),
    M('d06', 'data', 'scaling', "return (x.to(dtype)/255 if x.dtype == torch.uint8 else x.to(dtype)), y", "return x.to(dtype), y", 'uint8 images not scaled to [0, 1]'),
    # --- checkpoint (30_checkpoint)
    M('c01', 'checkpoint', 'safe load', 'try: ckpt = torch.load(path, map_location=map_location, weights_only=True)', 'try: ckpt = torch.load(path, map_location=map_location, weights_only=False)', 'unsafe pickle load'),
    M('c02', 'checkpoint', 'RNG state', 'random.setstate((v, tuple(st), g))', 'pass', 'python RNG not restored'),
    # --- learner, resilience (31_learner, 32_resilience, 33_fit_nae)
    M('r01', 'learner', 'temperature lr', 'dict(params=temp, lr=lr * t_lr_mult)', 'dict(params=temp, lr=lr)', 'temperature at the network lr'),
    M('r02', 'learner', 'optimiser', 'def backward(self): self.opt.zero_grad(set_to_none=True); self.loss.backward()', 'def backward(self): self.loss.backward()', 'gradients accumulate across steps', ['32_resilience.ipynb', '33_fit_nae.ipynb']),
    M('r03', 'learner', 'model selection', '(v > self.best if _MAXIMIZE[self.monitor] else v < self.best)', '(v < self.best if _MAXIMIZE[self.monitor] else v > self.best)', 'keeps the worst weights'),
    M('r04', 'learner', 'resume', "self.step, self.stopped, self._elapsed0, self._t0 = c['step'], c['stopped'], c['elapsed'], time.time()", "self.step, self.stopped, self._elapsed0, self._t0 = 0, c['stopped'], c['elapsed'], time.time()", 'resume restarts the step count', ['32_resilience.ipynb', '33_fit_nae.ipynb']),
    M('r05', 'learner', 'gradient clipping', 'def after_backward(self, learn): nn.utils.clip_grad_norm_(learn.model.parameters(), self.max_norm)', 'def after_backward(self, learn): pass', 'gradient clipping callback does nothing'),
    M('r06', 'learner', 'early stopping', "if learn.val['bad'] > self.patience: raise CancelFitException()", "if learn.val['bad'] > self.patience + 1: raise CancelFitException()", 'early stopping one validation late'),
    M('r07', 'resilience', 'dead network', "stuck = prev is not None and (prev['energy'] is None", "stuck = prev is None or (prev['energy'] is None", 'a fresh network is judged dead at the first check'),
    M('r08', 'resilience', 'rollback', 'if ck is not None: ck.save(learn)   # the restored state', 'pass   # the restored state', 'after a rollback last.pt keeps the dead network', ['33_fit_nae.ipynb']),
    M('r09', 'resilience', 'dead network', 'self.good = None   # every checkpoint since then', 'pass   # every checkpoint since then', 'a network dead from the start is rolled back to its dead start', ['33_fit_nae.ipynb']),
    # --- run (46_run)
    M('p01', 'run', 'PCD settings', "kw.update(dict(buffer_size=cfg['buffer_size'], replay_prob=cfg['replay_prob']) if cfg['replay'] else", "kw.update(dict() if cfg['replay'] else", 'nae_pcd ignores buffer_size and replay_prob'),
    M('p02', 'run', '2-D model selection', "if v < self.best[0]: self.best = (v, learn.step,", "if v <= self.best[0] and False: self.best = (v, learn.step,", '2-D runs keep no selected weights (the last ones are reported)'),
    M('p03', 'ebm', 'density box', "b = getattr(model, 'x_bounds', None)\n    dlo", "b = None\n    dlo", 'density metrics on [-4, 4]^2 whatever box the samplers target', ['46_run.ipynb']),
    # --- detector: label-free selection, budget; data: blends; the study and the benchmark
    M('q01', 'detector', 'selection', "            load_model_state(model, sel.best_state)\n", "            pass\n", 'the selected weights are not loaded: the last ones stay'),
    M('q02', 'detector', 'budget', "if time.time() >= self.deadline: self.spent = True; raise CancelFitException()", "if False: self.spent = True; raise CancelFitException()", 'the budget never stops training'),
    M('q03', 'detector', 'selection split', "    return _calib_split(n, 0.1, seed + 1, min_rows=100, most=1000)", "    return np.arange(n), _calib_split(n, 0.1, seed + 1, min_rows=100, most=1000)[1]", 'the selection rows are also trained on'),
    M('q04', 'data', 'blends', "torch.randint(1, len(x), (len(x),), generator=g)) % len(x)", "torch.randint(0, len(x), (len(x),), generator=g)) % len(x)", 'a row can be blended with itself'),
    M('q05', 'detector_bench', 'ECOD', "return np.max(np.stack([lo.sum(1), hi.sum(1), auto.sum(1)]), axis=0)", "return np.max(np.stack([lo.sum(1), lo.sum(1), auto.sum(1)]), axis=0)", 'ECOD without the right tail'),
    M('q06', 'study', 'selection', "return max(ok, key=lambda r: r[key]) if ok else rows[-1]", "return min(ok, key=lambda r: r[key]) if ok else rows[-1]", 'the study picks the worst checkpoint of a rule'),
    # --- the captured step: StepGraph, the learner's plan, one read-back
    M('u01', 'fast', 'capture', "            self._restore(saved)                          # the warm-up steps", "            pass                          # the warm-up steps", 'the warm-up updates of a captured step are kept: training starts two steps ahead'),
    M('u02', 'fast', 'capture', "for s, x in zip(self.inputs, inputs): s.copy_(x)", "for s, x in zip(self.inputs, inputs): pass", 'a replay trains on the batch it was captured with'),
    M('u03', 'fast', 'capture', "                tuple(t.data_ptr() for t in _graph_tensors(model, opt)),\n", "                (),\n", 'a loaded optimiser state is not noticed: the graph keeps updating the old tensors'),
    M('u04', 'fast', 'capture', "            else: t.zero_()", "            else: pass", "the optimiser state created while warming up is kept (Adam's moments and step count)"),
    M('u05', 'ebm', 'statistics', "vals = dict(zip(ts, stat_vector(", "vals = dict(zip(ts[::-1], stat_vector(", 'statistics read back under the wrong names'),
    M('u06', 'learner', 'capture', "        if why is None and cbs: why =", "        if False and cbs: why =", 'gradient clipping is skipped silently when steps are captured'),
    M('u07', 'models', 'capture', "if r is not None: loss = loss + r; parts.update(z_reg=r.detach(), loss=loss.detach())", "if r is not None: parts.update(z_reg=r.detach())", 'the Euclidean latent penalty is reported but not trained'),
]

def owner(module:str) -> str:
    "The notebook a module is exported from (from its 'File to edit' header)."
    for line in (ROOT/'nae_nbdev'/f'{module}.py').read_text().splitlines()[:6]:
        if 'File to edit:' in line: return Path(line.split('File to edit:')[1].strip().rstrip('.')).name
    raise SystemExit(f'no owning notebook found for {module}')

def _nb_cells(nb:dict) -> list:
    "The exported code cells of a notebook."
    return [c for c in nb['cells'] if c['cell_type'] == 'code' and ''.join(c['source']).lstrip().startswith('#| export')]

def nb_count(nb_path:Path, text:str) -> int:
    return sum(''.join(c['source']).count(text) for c in _nb_cells(json.loads(nb_path.read_text())))

def nb_replace(nb_path:Path, old:str, new:str):
    "Replace `old` by `new` in the notebook's exported cells (the JSON is rewritten; the copy is restored afterwards)."
    nb = json.loads(nb_path.read_text())
    for c in _nb_cells(nb):
        src = ''.join(c['source'])
        if old in src: c['source'] = src.replace(old, new).splitlines(keepends=True)
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

def scratch_copy(dest:Path) -> Path:
    "Copy the repository (without .git, run outputs and build folders) to `dest`/repo."
    base = shutil.ignore_patterns('.git', 'runs', '_docs', '_proc', '__pycache__', '*.egg-info', '.ipynb_checkpoints', '*.pt')
    records = ROOT/'nae_nbdev'/'records'
    def skip(folder, names):   # checkpoints left around the repository are not needed; the package's records (a published
        if Path(folder).resolve().is_relative_to(records): return set()   # model the notebooks load) are
        return base(folder, names)
    repo = dest/'repo'
    shutil.copytree(ROOT, repo, ignore=skip, symlinks=True)
    return repo

def run_tests(repo:Path, targets:list, timeout:int) -> tuple[bool, str, float]:
    "Run each target in the scratch repo until one fails; returns (all passed, what failed, seconds)."
    env = dict(os.environ, PYTHONPATH=f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', MPLBACKEND='Agg')
    env.pop('NAE_DATA', None)                      # the fast tier, as on a fresh clone
    t0 = time.time()
    for t in targets:
        cmd = ([sys.executable, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider', t] if t.endswith('.py')
               else ['nbdev_test', '--path', f'nbs/{t}'])
        try: r = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired: return False, f'{t} (timeout {timeout}s: counted as caught)', time.time() - t0
        if r.returncode != 0: return False, t, time.time() - t0
    return True, '', time.time() - t0

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--only', nargs='*', default=None, help='module names or mutant ids')
    ap.add_argument('--list', action='store_true', help='print the mutants and exit')
    ap.add_argument('--json', default=None, help='write the result to this JSON file')
    ap.add_argument('--jobs', type=int, default=1, help='parallel scratch copies (default 1: the machine is shared)')
    ap.add_argument('--timeout', type=int, default=900, help='seconds per test target')
    ap.add_argument('--baseline', action='store_true', help='check once per notebook that the unmutated tests pass; skip the mutants of one that fails')
    a = ap.parse_args()
    todo = [m for m in MUTANTS if a.only is None or m.module in a.only or m.id in a.only]
    if len({m.id for m in MUTANTS}) != len(MUTANTS): raise SystemExit('duplicate mutant ids')
    for m in todo:   # every mutant must apply to the current sources, exactly once in the module and in its notebook
        n = (ROOT/'nae_nbdev'/f'{m.module}.py').read_text().count(m.old)
        k = nb_count(ROOT/'nbs'/owner(m.module), m.old)
        if n != 1 or k != 1: raise SystemExit(f'mutant {m.id} ({m.module}): its text occurs {n} times in the module, {k} in {owner(m.module)}; update the mutant')
    if a.list:
        for m in todo: print(f'{m.id}  {m.module:10s} {m.kind:28s} {m.why}  -> {owner(m.module)} {" ".join(m.tests)}')
        print(f'{len(todo)} mutants'); return
    tmp = Path(tempfile.mkdtemp(prefix='nae_mutants_'))
    repos = [scratch_copy(tmp/f'w{i}') for i in range(max(1, a.jobs))]
    print(f'{len(todo)} mutants, {len(repos)} scratch cop{"y" if len(repos) == 1 else "ies"} under {tmp}', flush=True)
    results, free, base = [], list(repos), {}
    import threading; lock = threading.Lock()
    def baseline_ok(repo:Path, targets:tuple) -> bool:
        "With --baseline: do the unmutated targets pass? (Checked once per set of targets; else every mutant looks caught.)"
        if not a.baseline: return True
        with lock:
            first = targets not in base
            ev = base.setdefault(targets, threading.Event())
        if first:
            ok, failed, s = run_tests(repo, list(targets), a.timeout)
            ev.ok = ok; ev.set()
            print(f"baseline {' '.join(targets)}: {'passes' if ok else 'FAILS (' + failed + '): its mutants are not run'} ({s:.0f}s)", flush=True)
        ev.wait(); return ev.ok
    def one(m:Mutant) -> dict:
        with lock: repo = free.pop()
        try:
            if not baseline_ok(repo, tuple([owner(m.module)] + m.tests)):
                print(f'{m.id} {m.module:10s} NOT RUN  the unmutated tests fail', flush=True)
                return dict(id=m.id, module=m.module, kind=m.kind, why=m.why, caught=None, by=None, seconds=0.)
            f, nbp = repo/'nae_nbdev'/f'{m.module}.py', repo/'nbs'/owner(m.module)
            orig, orig_nb = f.read_text(), nbp.read_text()
            f.write_text(orig.replace(m.old, m.new)); nb_replace(nbp, m.old, m.new)
            try: passed, failed, s = run_tests(repo, [owner(m.module)] + m.tests, a.timeout)
            finally: f.write_text(orig); nbp.write_text(orig_nb)   # also undoes the notebook's own nbdev_export in the copy
            r = dict(id=m.id, module=m.module, kind=m.kind, why=m.why, caught=not passed, by=failed or None, seconds=round(s, 1))
            print(f"{m.id} {m.module:10s} {'caught  ' if r['caught'] else 'SURVIVED'} {s:6.0f}s  {m.why}" + (f'  [{failed}]' if failed else ''), flush=True)
            return r
        finally:
            with lock: free.append(repo)
    t0 = time.time()
    with ThreadPoolExecutor(len(repos)) as ex: results = list(ex.map(one, todo))
    caught = sum(r['caught'] is True for r in results)
    surv = [r for r in results if r['caught'] is False]
    notrun = [r for r in results if r['caught'] is None]
    print(f'\ncaught {caught}/{len(results)} mutants in {(time.time() - t0) / 60:.1f} min'
          + (f'; {len(notrun)} not run because their unmutated notebook fails' if notrun else ''))
    for r in surv: print(f"  survived: {r['id']} {r['module']}: {r['why']}")
    for r in notrun: print(f"  not run: {r['id']} {r['module']}: {r['why']}")
    if a.json:
        out = dict(caught=caught, total=len(results), survived=[r['id'] for r in surv], not_run=[r['id'] for r in notrun], minutes=round((time.time() - t0) / 60, 1),
                   date=time.strftime('%Y-%m-%d'), machine=f'{platform.machine()}, {os.cpu_count()} CPUs, {a.jobs} worker(s), one thread each',
                   mutants=results)
        Path(a.json).write_text(json.dumps(out, indent=1) + '\n')
        print(f'written to {a.json}')
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if surv or notrun else 0)

if __name__ == '__main__': main()
