"""The detector API (nae_nbdev.detector) as scikit-learn and PyOD users call it: clone, fit/predict,
save/load, and the errors for bad inputs. Tiny models and budgets: a few seconds on one CPU core."""
import warnings
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch.utils.data import DataLoader, TensorDataset

from nae_nbdev.core import NAEError
from nae_nbdev.detector import NAEDetector, AEDetector, DetectorNotFitted

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
    assert c.dz == 3 and det.dz == 16


def test_fit_predict_conventions(X, fitted):
    d = fitted
    assert d.decision_scores_.shape == (80,) and d.decision_scores_.dtype == np.float64
    assert d.threshold_ == pytest.approx(np.quantile(d.decision_scores_, 0.9))
    np.testing.assert_array_equal(d.labels_, (d.decision_scores_ > d.threshold_).astype(int))
    assert abs(d.labels_.mean() - 0.1) < 0.03
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
    with pytest.raises(NAEError, match="scale='minmax'"): NAEDetector(**TINY).fit(Xt)
    d = NAEDetector(scale='minmax', **TINY).fit(Xt)
    np.testing.assert_allclose(d.scale_min_, Xt.min(0))
    np.testing.assert_allclose(d.decision_scores_, fitted.decision_scores_, rtol=1e-4)
    far = Xt[:1] * 3                                               # far outside the training range: not clipped
    assert d.decision_function(far)[0] > d.decision_scores_.max() and d.predict(far)[0] == 1


def test_save_load_round_trip(tmp_path, X):
    d = NAEDetector(scale='minmax', **TINY).fit(X * 4)
    p = d.save(tmp_path / 'det.pt')
    torch.load(p, weights_only=True)                               # the safe checkpoint format
    e = NAEDetector.load(p)
    assert e.get_params() == d.get_params()
    np.testing.assert_array_equal(e.decision_function(X * 4), d.decision_function(X * 4))
    for a in ('threshold_', 'decision_scores_', 'labels_', 'scale_min_', 'scale_range_', 'x_shape_', 'seed_'):
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
    with pytest.raises(NAEError, match='fitted on'): fitted.decision_function(X[:, :5])
    with pytest.raises(NAEError, match="scale='minmax'"): fitted.predict(X + 1)
    with pytest.raises(NAEError, match='NaN'): fitted.score_samples(np.where(X > 0.5, np.inf, X))


def test_not_fitted():
    d = NAEDetector()
    for f in (d.decision_function, d.predict, d.score_samples):
        with pytest.raises(DetectorNotFitted, match='not fitted'): f(np.zeros((2, 3)))
    with pytest.raises(NotFittedError): d.save('x.pt')             # also scikit-learn's error type
    with pytest.raises(NotFittedError): check_is_fitted(d)
