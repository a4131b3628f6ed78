"""The detector API (nae_nbdev.detector) as scikit-learn and PyOD users call it: clone, fit/predict,
save/load, and the errors for bad inputs. Tiny models and budgets: a few seconds on one CPU core."""
import random, re, warnings
from fractions import Fraction
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch.utils.data import DataLoader, TensorDataset

from sklearn.datasets import load_breast_cancer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from nae_nbdev.core import NAEError, seed_everything
from nae_nbdev.detector import NAEDetector, AEDetector, DetectorNotFitted, _conformal_threshold, _min_calibration_rows
from nae_nbdev.learner import batch_scores
from nae_nbdev.resilience import make_learner
from nae_nbdev.models import make_model

TINY = dict(dz=4, mult=0.25, ae_iters=5, nae_iters=3, z_steps=2, x_steps=2, batch_size=32, random_state=0)
AE_TINY = {k: TINY[k] for k in ('dz', 'mult', 'ae_iters', 'batch_size', 'random_state')}


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def X():
    x = torch.rand(80, 6, generator=torch.Generator().manual_seed(0))
    x[0], x[1] = 0., 1.   # every feature spans exactly [0, 1]
    return x.numpy()


@pytest.fixture(scope='module')
def fitted(X):
    return NAEDetector(**TINY).fit(X)


def test_clone_keeps_params_untouched():
    det = NAEDetector(device=None, random_state=3, contamination=0.05, scale='minmax', x_steps=7)
    c = clone(det)
    assert c.get_params() == det.get_params()
    assert c.device is None and c.random_state == 3 and c.x_steps == 7
    assert clone(AEDetector(kind='vae')).kind == 'vae'
    c.set_params(dz=3)
    assert c.dz == 3 and det.dz == 'auto'


def test_fit_predict_conventions(X, fitted):
    d = fitted
    assert d.decision_scores_.shape == (80,) and d.decision_scores_.dtype == np.float64
    assert d.n_features_in_ == 6 and len(d.calib_index_) == 12       # 15% of 80 held out of training
    assert d.threshold_ == pytest.approx(d.decision_scores_[d.calib_index_].max())   # ceil(13 * 0.9) = 12: the largest of 12
    np.testing.assert_array_equal(d.labels_, (d.decision_scores_ > d.threshold_).astype(int))
    old = NAEDetector(calibration=0, **TINY).fit(X)                 # PyOD's rule: a quantile of the training scores
    assert len(old.calib_index_) == 0 and abs(old.labels_.mean() - 0.1) < 0.03
    assert old.threshold_ == pytest.approx(np.quantile(old.decision_scores_, 0.9))
    s = d.decision_function(X)
    np.testing.assert_allclose(s, d.decision_scores_, rtol=1e-6)
    np.testing.assert_array_equal(d.score_samples(X), -s)          # scikit-learn: higher = more normal
    np.testing.assert_array_equal(d.predict(X), d.labels_)         # PyOD: 1 = outlier
    assert set(np.unique(d.predict(X))) <= {0, 1}
    check_is_fitted(d)
    assert not hasattr(clone(d), 'model_')


def test_reproducible_and_leaves_global_rng_alone(X, fitted):
    np.random.seed(5); a = np.random.rand(3)
    np.random.seed(5); d = NAEDetector(**TINY).fit(X); b = np.random.rand(3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(d.decision_scores_, fitted.decision_scores_)


def test_dataset_and_dataloader_inputs(X, fitted):
    t = torch.from_numpy(X)
    d = NAEDetector(**TINY).fit(TensorDataset(t, torch.zeros(len(t))))
    np.testing.assert_array_equal(d.decision_scores_, fitted.decision_scores_)
    s = fitted.decision_function(DataLoader(TensorDataset(t), batch_size=9, shuffle=True))
    np.testing.assert_allclose(s, fitted.decision_scores_, rtol=1e-5)   # dataset order, even when shuffled
    dl = NAEDetector(**TINY).fit(DataLoader(TensorDataset(t), batch_size=16, shuffle=True))
    assert len(dl.calib_index_) == 0                               # a loader cannot be split: PyOD's rule
    assert dl.threshold_ == pytest.approx(np.quantile(dl.decision_scores_, 0.9))


def test_image_shapes_and_uint8():
    imgs = (torch.rand(40, 8, 8, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        d = AEDetector(**AE_TINY).fit(imgs)                        # (N, H, W) uint8: channel added, / 255
    assert any('uint8' in str(m.message) for m in w)
    assert d.x_shape_ == (1, 8, 8)
    assert d.decision_function(imgs[:, None] / 255.).shape == (40,)


def test_minmax_scaling(X, fitted):
    Xt = X * np.array([1., 10, 100, 1e3, 5, 0.1]) - 50
    with pytest.raises(NAEError, match="scale='minmax'"): NAEDetector(scale=None, **TINY).fit(Xt)
    d = NAEDetector(**TINY).fit(Xt)                                # scale='auto': Xt is not in [0, 1], so min-max
    fit_rows = np.setdiff1d(np.arange(len(X)), d.calib_index_)
    np.testing.assert_allclose(d.scale_min_, Xt[fit_rows].min(0))  # the scaler sees the training part only
    np.testing.assert_allclose(d.scale_range_, np.ptp(Xt[fit_rows], 0))
    np.testing.assert_array_equal(NAEDetector(scale='minmax', **TINY).fit(Xt).decision_scores_, d.decision_scores_)
    far = Xt[:1] * 3                                               # far outside the training range: not clipped
    assert d.decision_function(far)[0] > d.decision_scores_.max() and d.predict(far)[0] == 1


def test_standardised_float64_input():
    Z = np.random.default_rng(0).standard_normal((60, 5))          # float64, negative values
    for det in (NAEDetector(**TINY), AEDetector(**AE_TINY)):
        d = det.fit(Z)
        assert d.scale_min_ is not None and d.n_features_in_ == 5
        assert np.isfinite(d.decision_function(Z * 10)).all()


def test_images_in_unit_range_are_not_rescaled():
    """Images in [0, 1] go to the model unchanged: with calibration=0 the detector is exactly a model
    trained by `make_learner` on the raw images, as before the scaler existed."""
    imgs = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    imgs[:, :, 0] = 0.                                               # a constant row, as digit borders are
    d = AEDetector(calibration=0, **AE_TINY).fit(imgs.numpy())
    assert d.scale_min_ is None
    seed_everything(0)
    m = make_model('ae', (1, 8, 8), net='auto', dz=4, mult=0.25, spherical=False)
    make_learner(m, imgs, loss='train_loss', lr=1e-3, n_iters=5, batch_size=32, seed=0, device='cpu',
                 name='ae', progress=False).fit()
    np.testing.assert_allclose(d.decision_scores_, batch_scores(m.eval(), imgs).double().numpy(), rtol=1e-6)


def test_minmax_pipeline_scores_rows_outside_the_fitted_range():
    x, y = load_breast_cancer(return_X_y=True)
    ben = x[y == 1]                                                # benign as normal
    tr, te = ben[:250], np.concatenate([ben[250:], x[y == 0]])
    pipe = make_pipeline(MinMaxScaler(), NAEDetector(dz=8, mult=0.5, ae_iters=150, nae_iters=10, z_steps=2,
                                                     x_steps=5, random_state=0)).fit(tr)
    s = pipe.decision_function(te)                                 # no error on out-of-range rows
    z = pipe[0].transform(te)
    out = ((z < 0) | (z > 1)).any(1)
    inlier = ~out & (np.arange(len(te)) < len(ben) - 250)          # unseen benign rows inside the fitted range
    assert out.sum() > 20 and inlier.sum() > 20
    assert s[out].mean() > s[inlier].mean()
    assert pipe.predict(te).shape == (len(te),)
    assert pipe[-1].scale_min_ is None                             # MinMaxScaler output (1 + rounding) counts as [0, 1]


def test_conformal_threshold_flags_at_most_contamination():
    assert _conformal_threshold(np.arange(100.), 0.1) == 90.    # the ceil(101 * 0.9) = 91st smallest
    assert _conformal_threshold(np.arange(20.), 0.1) == 18.     # 21 * 0.9 = 18.9: the 19th (no rounding slip)
    rng = np.random.default_rng(0)                                 # exchangeable scores: P(new > threshold) = 1 - 19/21
    s = rng.standard_normal((20000, 21))
    rate = np.mean([row[20] > _conformal_threshold(row[:20], 0.1) for row in s])
    assert abs(rate - 2 / 21) < 0.008


@pytest.mark.parametrize('c', [0.1, 0.05, 0.2, 0.3, 0.25, 0.01, 0.5, 0.15, 0.07])
def test_conformal_threshold_warns_exactly_when_too_few_rows(c):
    """n held-out scores bound the false-positive rate by c iff ceil((n+1)(1-c)) <= n iff n >= (1-c)/c, computed here in
    exact rational arithmetic; below that the threshold is the largest score and `fit` must warn, naming the rows needed."""
    q = Fraction(str(c))
    need = -((q - 1) // q)                                         # ceil((1 - c)/c), exactly
    assert _min_calibration_rows(c) == need
    for n in range(max(1, need - 3), need + 3):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            t = _conformal_threshold(np.arange(float(n)), c)
        if n < need:
            assert len(w) == 1 and t == n - 1                      # the largest score
            msg = str(w[0].message)
            assert f'Only {n} held-out calibration rows' in msg and f'at least {need}' in msg and f'{1 / (n + 1):.3f}' in msg
        else:
            assert not w


def test_false_positive_rate_on_fresh_normal_draws():
    """Independent check of the rule: scores from a fixed function of samples of a known distribution (||x||^2, x ~ N(0, I_3)).
    Over many held-out sets and fresh normal samples the flag rate is the exact 1 - k/(n+1) of exchangeable continuous
    scores: at most c once n >= ceil((1-c)/c), and the 1/(n+1) > c that the warning states below."""
    rng, c = np.random.default_rng(1), 0.1
    score = lambda x: (x ** 2).sum(-1)
    for n in (4, 8, 9, 12, 30):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            tau = np.array([_conformal_threshold(score(rng.standard_normal((n, 3))), c) for _ in range(5000)])
        rate = (score(rng.standard_normal((5000, 100, 3))) > tau[:, None]).mean()
        k = int(np.ceil((n + 1) * (1 - c) - 1e-9))
        if n >= 9:
            assert not w and abs(rate - (1 - k / (n + 1))) < 0.008 and rate < c + 0.008
        else:
            stated = float(re.search(r'probability 1/\(n\+1\) = ([0-9.]+[0-9])', str(w[0].message)).group(1))
            assert abs(stated - 1 / (n + 1)) < 1e-3 and abs(rate - stated) < 0.01 and rate > c + 0.005


def test_fit_warns_when_too_few_rows_are_held_out(X):
    with pytest.warns(UserWarning, match=r'Only 6 held-out calibration rows.*at least 9'):
        d = NAEDetector(**TINY).fit(X[:40])                        # 15% of 40 rows: 6 held out
    assert d.threshold_ == d.decision_scores_[d.calib_index_].max()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        NAEDetector(**TINY).fit(X[:60])                            # 9 held out: enough at contamination 0.1
        NAEDetector(contamination=0.15, **TINY).fit(X[:40])        # 6 held out: enough at 0.15 (ceil(0.85/0.15) = 6)
    assert not [m for m in w if 'calibration rows' in str(m.message)]


def test_labels_are_the_calibrated_rule_on_the_rows_of_X():
    """`labels_` is `predict(X)`: of the n held-out rows exactly n - k are flagged (distinct scores), fewer than c*n;
    it is not PyOD's `labels_` (a fraction c of X) unless the training scores set the threshold."""
    Z = np.random.default_rng(3).random((200, 6))
    d = NAEDetector(calibration=0.5, **TINY).fit(Z)
    n = len(d.calib_index_); k = int(np.ceil((n + 1) * 0.9))
    assert (n, k) == (100, 91)
    np.testing.assert_array_equal(d.labels_, d.predict(Z))
    held = d.decision_scores_[d.calib_index_]
    assert len(np.unique(held)) == n
    assert d.threshold_ == np.sort(held)[k - 1]
    assert d.labels_[d.calib_index_].sum() == n - k and (n - k) / n < d.contamination
    assert d.labels_.sum() == (d.decision_scores_ > d.threshold_).sum()
    p = NAEDetector(calibration=0, **TINY).fit(Z)                   # PyOD's rule: about a fraction c of X
    assert abs(p.labels_.mean() - 0.1) < 0.01


def test_contamination_is_documented_as_one_thing():
    from fastcore.docments import docments
    for cls in (NAEDetector, AEDetector):
        doc = docments(cls.__init__)['contamination']
        assert 'false-positive rate' in doc and 'not the share of outliers' in doc, doc
    with pytest.raises(NAEError, match='false-positive rate'): NAEDetector(contamination=0.9).fit(np.zeros((20, 3)))
    assert 'expected fraction of outliers' not in NAEDetector.fit.__doc__


def test_random_state_none_leaves_the_global_generators_alone(X):
    np.random.seed(11); random.seed(11); torch.manual_seed(11)
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    d = NAEDetector(**{**TINY, 'random_state': None}).fit(X)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state and torch.equal(torch.get_rng_state(), torch_state)
    assert 0 <= d.seed_ < 2**31 - 1
    e = NAEDetector(**{**TINY, 'random_state': d.seed_}).fit(X)     # seed_ is the seed training used
    np.testing.assert_array_equal(e.decision_scores_, d.decision_scores_)
    assert NAEDetector(**{**TINY, 'random_state': None}).fit(X).seed_ != d.seed_   # a fresh seed each fit
    rs = np.random.RandomState(0)                                  # a RandomState is the caller's own: drawn from it
    f = NAEDetector(**{**TINY, 'random_state': rs}).fit(X)
    assert f.seed_ == np.random.RandomState(0).randint(2**31 - 1)


def test_predict_proba():
    Z = np.random.default_rng(1).standard_normal((60, 4))
    d = AEDetector(**AE_TINY).fit(Z)
    for method in ('linear', 'unify'):
        p = d.predict_proba(np.concatenate([Z, Z * 20]), method=method)
        assert p.shape == (120, 2) and ((p >= 0) & (p <= 1)).all()
        np.testing.assert_allclose(p.sum(1), 1)
        s = d.decision_function(np.concatenate([Z, Z * 20]))
        assert (np.diff(p[np.argsort(s), 1]) >= 0).all()           # monotone in the score
    p = d.predict_proba(Z)[:, 1]
    np.testing.assert_allclose(p, (d.decision_scores_ - d.decision_scores_.min()) / np.ptp(d.decision_scores_))
    with pytest.raises(NAEError, match='linear'): d.predict_proba(Z, method='rank')


def test_save_load_round_trip(tmp_path, X):
    d = NAEDetector(scale='minmax', **TINY).fit(X * 4)
    p = d.save(tmp_path / 'det.pt')
    torch.load(p, weights_only=True)                               # the safe checkpoint format
    e = NAEDetector.load(p)
    assert e.get_params() == d.get_params()
    np.testing.assert_array_equal(e.decision_function(X * 4), d.decision_function(X * 4))
    for a in ('threshold_', 'decision_scores_', 'labels_', 'scale_min_', 'scale_range_', 'x_shape_', 'seed_',
              'calib_index_', 'n_features_in_'):
        np.testing.assert_array_equal(getattr(e, a), getattr(d, a))
    with pytest.raises(NAEError, match=r'NAEDetector\.load'): AEDetector.load(p)
    a = AEDetector(random_state=np.random.RandomState(0), contamination=np.float64(0.2),
                   **{k: v for k, v in AE_TINY.items() if k != 'random_state'}).fit(X)
    a2 = AEDetector.load(a.save(tmp_path / 'ae.pt'))
    assert a2.random_state == a.seed_                              # a RandomState is saved as the seed it gave
    assert a2.contamination == 0.2 and type(a2.contamination) is float   # numpy scalars are saved as python numbers
    np.testing.assert_array_equal(a2.decision_function(X), a.decision_function(X))
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(NAEError, match='truncated or corrupted'): NAEDetector.load(tmp_path / 'junk.pt')


@pytest.mark.parametrize('make, match', [
    (lambda X: NAEDetector(**TINY).fit(np.full_like(X, np.nan)), 'NaN'),
    (lambda X: NAEDetector(**TINY).fit(X[0]), 'at least 2 dimensions'),
    (lambda X: NAEDetector(**TINY).fit(X[:0]), 'empty'),
    (lambda X: NAEDetector(**TINY).fit(np.array([['a'] * 6], dtype=object)), 'cannot be read|dtype'),
    (lambda X: NAEDetector(contamination=0.6).fit(X), r'contamination.*\(0, 0\.5\]'),
    (lambda X: NAEDetector(contamination=True).fit(X), 'contamination'),
    (lambda X: NAEDetector(calibration=0.7).fit(X), r'calibration.*\[0, 0\.5\]'),
    (lambda X: NAEDetector(scale='zscore').fit(X), "scale='minmax'"),
    (lambda X: NAEDetector(net='conv28').fit(X), 'conv28'),
    (lambda X: NAEDetector(dz=0).fit(X), 'latent size'),
    (lambda X: AEDetector(kind='nae').fit(X), 'NAEDetector'),
    (lambda X: NAEDetector(scale='minmax').fit(TensorDataset(torch.from_numpy(X))), 'arrays only'),
    (lambda X: NAEDetector(**TINY).fit(TensorDataset(torch.from_numpy(X) * 2)), "scale='minmax'"),
])
def test_bad_inputs_raise_clear_errors(X, make, match):
    with pytest.raises(NAEError, match=match) as e: make(X)
    assert 'How to fix' in str(e.value)


def test_bad_inputs_after_fit(X, fitted):
    with pytest.raises(NAEError, match=r'fitted on \(6,\) \(n_features_in_ = 6\)'): fitted.decision_function(X[:, :5])
    assert fitted.predict(X + 1).shape == (80,)                    # outside the training range: scored, not refused
    assert fitted.decision_function(X + 1).mean() > fitted.decision_scores_.mean()
    with pytest.raises(NAEError, match='NaN'): fitted.score_samples(np.where(X > 0.5, np.inf, X))


def test_not_fitted():
    d = NAEDetector()
    for f in (d.decision_function, d.predict, d.score_samples):
        with pytest.raises(DetectorNotFitted, match='not fitted'): f(np.zeros((2, 3)))
    with pytest.raises(NotFittedError): d.save('x.pt')             # also scikit-learn's error type
    with pytest.raises(NotFittedError): check_is_fitted(d)
