"""The device rule (notebook 00_core), checked without a GPU.

Each public entry point is called with the model on PyTorch's `meta` device (shapes, no data) and its inputs and
generators on the CPU, inside `core.strict_devices()`, which raises `DeviceMismatch` whenever one operation mixes two
devices. A call passes if it finishes, or stops only where it first needs real numbers, which `meta` cannot give
(`.item()`, copying a result back to the CPU). A model moved by training and a notebook's CPU tensors is the
situation of a real GPU run: these tests fail on the bugs a GPU found (a CPU tensor given to a CUDA model, a CPU
generator given to a CUDA chain), and `test_the_check_can_fail` shows that they would.
"""
import re
import pytest
import torch
from nae_nbdev.core import strict_devices, DeviceMismatch, model_device
from nae_nbdev.models import make_model
from nae_nbdev.langevin import langevin
from nae_nbdev.samplers import CDSampler, PCDSampler, OMISampler, ReplayBuffer
from nae_nbdev.ebm import density_on_grid, exact_nll
from nae_nbdev.learner import batch_scores

torch.set_num_threads(1)
NO_DATA = re.compile(r'meta tensor|meta device|on meta|Cannot copy out of meta|\.item\(\)|tolist|data-dependent|'
                     r'out of meta', re.I)
SHAPE = (1, 8, 8)

def reaches(fn):
    "Run `fn` under `strict_devices`: 'done' if it finished, 'stopped at data' if it stopped only where meta has no numbers."
    with strict_devices():
        try:
            fn(); return 'done'
        except DeviceMismatch: raise
        except (NotImplementedError, RuntimeError, ValueError, TypeError) as e:
            if NO_DATA.search(str(e)): return 'stopped at data'
            raise

def on_meta(kind, shape=SHAPE, **kw):
    torch.manual_seed(0)
    m = make_model(kind, shape, dz=4, mult=0.25, **kw) if len(shape) == 3 else make_model(kind, shape, net='fcres2', dz=2, mult=0.25, **kw)
    return m.to('meta')

x_cpu = lambda n=4, shape=SHAPE: torch.rand(n, *shape)
gen = lambda: torch.Generator().manual_seed(0)

@pytest.mark.parametrize('kind,shape', [(k, SHAPE) for k in ['ae', 'nae', 'dae', 'vae', 'wae', 'nae_cd', 'nae_pcd']]
                                       + [('nae', (1, 28, 28)), ('nae', (3, 32, 32))])
def test_model_methods_take_cpu_inputs(kind, shape):
    "Fully connected (8x8) and convolutional (Conv28, Conv32) networks, in the accelerated layers the library builds."
    m = on_meta(kind, shape)
    x_cpu = lambda: torch.rand(4, *shape)
    assert model_device(m).type == 'meta'
    for name, call in [('energy', lambda: m.energy(x_cpu())), ('score', lambda: m.score(x_cpu())),
                       ('encode', lambda: m.encode(x_cpu())), ('decode', lambda: m.decode(torch.randn(4, *m.latent_shape))),
                       ('batch_scores', lambda: batch_scores(m, x_cpu()))]:
        assert reaches(call) in ('done', 'stopped at data'), name

@pytest.mark.parametrize('kind', ['nae', 'nae_cd', 'nae_pcd'])
def test_sampling_with_cpu_generator(kind):
    m = on_meta(kind)
    m.sampler.x_steps, m.sampler.z_steps = 2, 2
    assert reaches(lambda: m.sample(3, generator=gen())) in ('done', 'stopped at data')
    assert reaches(lambda: m.sample(3)) in ('done', 'stopped at data')
    assert reaches(lambda: m.sampler(m, x_cpu(), generator=gen())) in ('done', 'stopped at data')
    if kind == 'nae':
        assert reaches(lambda: m.sampler.sample_fresh(m, 3, z_steps_mult=1, generator=gen())) in ('done', 'stopped at data')

def test_langevin_and_strategies_on_a_moved_model():
    m = on_meta('nae')
    assert reaches(lambda: langevin(m.energy, x_cpu(), n_steps=2, generator=gen())) in ('done', 'stopped at data')
    for s in (CDSampler(x_steps=2), PCDSampler(x_steps=2), PCDSampler(x_steps=2, buffer_size=16), OMISampler(z_steps=2, x_steps=2)):
        assert reaches(lambda: s(m, x_cpu(), generator=gen())) in ('done', 'stopped at data'), type(s).__name__

def test_grids_are_built_on_the_energys_device():
    m = on_meta('nae', shape=(2,))
    assert reaches(lambda: density_on_grid(m.energy, n=8)) in ('done', 'stopped at data')
    assert reaches(lambda: exact_nll(m.energy, torch.randn(5, 2), n=8)) in ('done', 'stopped at data')
    assert reaches(lambda: m.log_prob(torch.randn(5, 2), n=8)) in ('done', 'stopped at data')

def test_sampler_state_moves_with_the_model():
    m = make_model('nae', SHAPE, dz=4, mult=0.25)
    m.sampler.buffer.push(torch.randn(5, 4))
    pcd = make_model('nae_pcd', SHAPE, dz=4, mult=0.25, sampler_kw=dict(buffer_size=None))
    pcd.sampler.chains = torch.rand(3, *SHAPE)
    m.to('meta'); pcd.to('meta')
    assert m.sampler.buffer.device.type == 'meta' and pcd.sampler.chains.device.type == 'meta'
    buf = ReplayBuffer(8); buf.push(torch.randn(2, 3))
    buf.push(torch.randn(2, 3, device='meta'))      # the buffer follows the chains: one move, then no copies
    assert buf.device.type == 'meta' and len(buf) == 4

def test_results_come_back_where_the_input_was():
    "On the CPU alone the rule is visible through its outputs: a CPU input gives CPU results, a sample follows its generator."
    m = make_model('nae', SHAPE, dz=4, mult=0.25)
    m.sampler.x_steps, m.sampler.z_steps = 2, 2
    assert m.energy(x_cpu()).device.type == 'cpu'
    assert m.sample(2, generator=gen()).device.type == 'cpu'
    out = m.sampler.sample_fresh(m, 2, z_steps_mult=1, generator=gen())
    assert {v.device.type for v in out.values()} == {'cpu'}
    a = m.sample(2, generator=gen()); b = m.sample(2, generator=gen())
    assert torch.equal(a, b)                         # a seed fixes the samples

def test_the_check_can_fail():
    "Without the rule (inputs left where they are, a generator not moved), the same calls raise `DeviceMismatch`."
    m = on_meta('nae')
    import nae_nbdev.core as C
    keep = C._same_device
    try:
        C._same_device = lambda a, b: True           # every model method takes its input where it is (the GPU run's bug)
        for call in (lambda: m.energy(x_cpu()), lambda: m.score(x_cpu()), lambda: m.decode(torch.randn(4, 4))):
            with pytest.raises(DeviceMismatch): reaches(call)
    finally: C._same_device = keep
    with pytest.raises(DeviceMismatch): reaches(lambda: torch.randn(3, device='meta', generator=gen()))
    import nae_nbdev.samplers as S, nae_nbdev.langevin as L
    keep = S.generator_on, L.generator_on
    try:
        S.generator_on = L.generator_on = lambda g, d: g   # the old behaviour: the caller's generator used as it is
        with pytest.raises(DeviceMismatch): reaches(lambda: m.sampler.sample_fresh(m, 3, z_steps_mult=1, generator=gen()))
    finally: S.generator_on, L.generator_on = keep
