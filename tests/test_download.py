"""The download path, offline: torchvision's addresses point at a local mirror of tiny archives in the real formats
(see `mirror.py`); the loaders download, check the MD5s, unpack and read them, and every failure names the files to
fetch by hand and where they go. A server that takes the connection and never answers, or one whose packets are
dropped, ends the download within its timeout (`NAE_DOWNLOAD_TIMEOUT`) with the same kind of error."""
import os, socket, sys, threading, time, types
from pathlib import Path
import numpy as np
import pytest, torch
from nae_nbdev.core import NAEError
from nae_nbdev.data import (load_mnist, load_fashion_mnist, load_cifar10, load_svhn, load_omniglot, load_celeba,
                            load_dataset, download_timeout)
from mirror import make_tiny_mnist, closed_port, tiny_images

def _as_float(x): return torch.from_numpy(np.ascontiguousarray(x)).float() / 255

@pytest.mark.parametrize('load,name', [(load_mnist, 'MNIST'), (load_fashion_mnist, 'FashionMNIST')])
def test_idx_download_checksum_load(mirror, tmp_path, load, name):
    mirror.patch()
    x, y = load('test', root=tmp_path, download=True)
    tx, ty = mirror.truth[name]['test']
    assert torch.equal(x, _as_float(tx)[:, None]) and torch.equal(y, torch.from_numpy(ty).long())
    raw = tmp_path/name/'raw'
    assert {p.name for p in raw.iterdir()} >= {'t10k-images-idx3-ubyte', 't10k-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte'}
    assert set(mirror.requests) == {f'/{name.lower()}/{f}.gz' for f in
                                    ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                                     't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']}
    n = len(mirror.requests)
    xtr, _ = load('train', root=tmp_path, download=True)         # 90 % of the 600 training images
    assert xtr.shape == (540, 1, 28, 28)
    assert len(mirror.requests) == n, "files already in place must not be fetched again"

def test_cifar10_download_checksum_load(mirror, tmp_path):
    mirror.patch()
    x, y = load_cifar10('test', root=tmp_path, download=True)
    tx, ty = mirror.truth['CIFAR-10']['test']
    assert torch.equal(x, _as_float(tx).permute(0, 3, 1, 2)) and torch.equal(y, torch.from_numpy(ty).long())
    x, y = load_cifar10('train', root=tmp_path, val_frac=0.0)   # now on disk: no download asked for
    tx, ty = mirror.truth['CIFAR-10']['train']
    assert torch.equal(x, _as_float(tx).permute(0, 3, 1, 2)) and torch.equal(y, torch.from_numpy(ty).long())
    assert set(mirror.requests) == {'/cifar/cifar-10-python.tar.gz'}

def test_svhn_download_checksum_load(mirror, tmp_path):
    mirror.patch()
    x, y = load_svhn('test', root=tmp_path, download=True)
    tx, ty = mirror.truth['SVHN']['test']
    assert torch.equal(x, _as_float(tx).permute(0, 3, 1, 2))
    assert torch.equal(y, torch.from_numpy(ty).long()) and (y == 0).any()   # the .mat's 10 is the digit 0

def test_omniglot_download_checksum_load(mirror, tmp_path):
    mirror.patch()
    x, y = load_omniglot(root=tmp_path, download=True)
    assert x.shape == (mirror.truth['Omniglot'], 1, 28, 28) and len(torch.unique(y)) == 4
    assert x[:, :, :2].max() == 0 and x.max() > 0.5           # inverted: black background, white strokes

def test_load_dataset_passes_download(mirror, tmp_path):
    mirror.patch()
    x, y = load_dataset('mnist', 'test', root=tmp_path, download=True, holdout=9)
    assert len(x) == 200 and int(y.sum()) == 20                 # labels cycle 0..9: 20 nines are the outliers

def test_checksum_mismatch_is_refused(mirror, tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10
    mirror.patch()
    monkeypatch.setattr(CIFAR10, 'tgz_md5', '0' * 32)
    with pytest.raises(NAEError) as e: load_cifar10('test', root=tmp_path, download=True)
    msg = str(e.value)
    assert 'Downloading CIFAR-10' in msg and 'failed' in msg and f'{tmp_path}/cifar-10-python.tar.gz' in msg

@pytest.mark.parametrize('load,files', [
    (load_mnist, ['MNIST/raw/train-images-idx3-ubyte.gz', 'MNIST/raw/t10k-labels-idx1-ubyte.gz']),
    (load_fashion_mnist, ['FashionMNIST/raw/t10k-images-idx3-ubyte.gz']),
    (load_cifar10, ['cifar-10-python.tar.gz']),
    (load_svhn, ['train_32x32.mat']),
    (load_omniglot, ['omniglot-py/images_evaluation.zip'])])
def test_unreachable_host_gives_a_clear_error(mirror, tmp_path, load, files):
    port = closed_port()
    mirror.patch(url=f'http://127.0.0.1:{port}')
    with pytest.raises(NAEError) as e: load(root=tmp_path, download=True)
    msg = str(e.value)
    assert 'failed' in msg and ('refused' in msg.lower() or 'Errno' in msg), msg
    assert 'by hand' in msg and f'127.0.0.1:{port}' in msg
    for f in files: assert f'-> {tmp_path/f}' in msg, (f, msg)
    assert 'Traceback' not in msg

def test_celeba_download_failure_names_the_files(tmp_path, monkeypatch):
    import torchvision.datasets.celeba as tvc
    def refuse(file_id, root, filename=None, md5=None):
        raise RuntimeError("Too many users have viewed or downloaded this file recently.")
    monkeypatch.setattr(tvc, 'download_file_from_google_drive', refuse)
    with pytest.raises(NAEError) as e: load_celeba(root=tmp_path, download=True)
    msg = str(e.value)
    assert 'Downloading CelebA' in msg and 'Too many users' in msg and 'quota' in msg
    for f in ['img_align_celeba.zip', 'list_attr_celeba.txt', 'identity_CelebA.txt', 'list_bbox_celeba.txt',
              'list_landmarks_align_celeba.txt', 'list_eval_partition.txt']: assert f in msg
    assert f'into {tmp_path/"celeba"}' in msg and str(tmp_path/'celeba'/'img_align_celeba'/'000001.jpg') in msg

def _celeba_by_hand(folder):
    "Tiny CelebA files in the layout the error asks for; returns their MD5s."
    from PIL import Image
    import hashlib
    folder.mkdir(parents=True); (folder/'img_align_celeba').mkdir()
    names, parts = [f'{i:06d}.jpg' for i in range(1, 8)], [0, 0, 0, 1, 1, 2, 2]   # (a split of one image trips torchvision)
    x, _ = tiny_images(7, (218, 178, 3), seed=5)
    for n, img in zip(names, x): Image.fromarray(img).save(folder/'img_align_celeba'/n, quality=95)
    attrs = [f'attr{k}' for k in range(40)]
    files = {'list_eval_partition.txt': ''.join(f'{n} {p}\n' for n, p in zip(names, parts)),
             'identity_CelebA.txt': ''.join(f'{n} {i}\n' for i, n in enumerate(names)),
             'list_bbox_celeba.txt': '7\nimage_id x_1 y_1 width height\n' + ''.join(f'{n} 1 2 3 4\n' for n in names),
             'list_landmarks_align_celeba.txt': '7\n' + ' '.join(f'p{k}' for k in range(10)) + '\n'
                                                + ''.join(f'{n} ' + ' '.join(['50'] * 10) + '\n' for n in names),
             'list_attr_celeba.txt': '7\n' + ' '.join(attrs) + '\n' + ''.join(f'{n} ' + ' '.join(['-1'] * 40) + '\n' for n in names)}
    md5 = {}
    for f, t in files.items(): (folder/f).write_text(t); md5[f] = hashlib.md5(t.encode()).hexdigest()
    return md5

def test_celeba_files_put_by_hand_load(tmp_path, monkeypatch):
    "The layout the CelebA error describes is what the loader reads (MD5s of the tiny files patched in)."
    from torchvision.datasets import CelebA
    md5 = _celeba_by_hand(tmp_path/'celeba')
    monkeypatch.setattr(CelebA, 'file_list', [(i, md5.get(f, m), f) for i, m, f in CelebA.file_list])
    x, y = load_celeba('train', root=tmp_path, size=32)
    assert x.shape == (3, 3, 32, 32) and (y == 0).all()
    assert load_celeba('val', root=tmp_path, size=64)[0].shape == (2, 3, 64, 64)
    assert load_celeba('test', root=tmp_path)[0].shape == (2, 3, 32, 32)

def test_make_tiny_mnist_prefills_a_data_folder(tmp_path, monkeypatch):
    truth = make_tiny_mnist(tmp_path, n_train=100, n_test=50)
    monkeypatch.setenv('NAE_DATA', str(tmp_path))              # found through NAE_DATA, no root=, no download
    x, y = load_mnist('test')
    assert torch.equal(y, torch.from_numpy(truth['test'][1]).long()) and x.shape == (50, 1, 28, 28)
    assert torch.equal(x, _as_float(truth['test'][0])[:, None])
    assert load_mnist('train', val_frac=0.0)[0].shape == (100, 1, 28, 28)

def test_root_comes_before_nae_data(tmp_path, monkeypatch):
    make_tiny_mnist(tmp_path/'a', n_train=20, n_test=10); make_tiny_mnist(tmp_path/'b', n_train=20, n_test=30)
    monkeypatch.setenv('NAE_DATA', str(tmp_path/'b'))
    assert len(load_mnist('test', root=tmp_path/'a')[0]) == 10 and len(load_mnist('test')[0]) == 30

# --- a download never hangs: servers that never answer ------------------------------------------------------------

LIMIT = 15  # seconds: far above the 1 s timeout the tests set, far below "forever"

@pytest.fixture
def silent_server(monkeypatch):
    "A server on 127.0.0.1 that accepts every connection and then says nothing (a host that never answers); yields its address."
    for var in ('no_proxy', 'NO_PROXY'): monkeypatch.setenv(var, '127.0.0.1,localhost')
    srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(16); srv.settimeout(0.1)
    held, stop = [], threading.Event()
    def serve():
        while not stop.is_set():
            try: held.append(srv.accept()[0])                    # keep the connection open, never read or write
            except socket.timeout: continue
            except OSError: return
    th = threading.Thread(target=serve, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.getsockname()[1]}'
    stop.set(); th.join(5)
    for c in held: c.close()                                     # a client still waiting (no timeout) now sees EOF
    srv.close()

@pytest.fixture
def dropping_server(monkeypatch):
    "A port on 127.0.0.1 whose accept queue is full, so new connections get no answer at all (dropped SYNs); yields its address."
    for var in ('no_proxy', 'NO_PROXY'): monkeypatch.setenv(var, '127.0.0.1,localhost')
    srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(0)
    filler = socket.create_connection(srv.getsockname(), timeout=2)   # fills the queue; nobody accepts it
    probe = socket.socket(); probe.settimeout(0.5)
    try: probe.connect(srv.getsockname()); pytest.skip("this system answers connections past a full accept queue")
    except (socket.timeout, TimeoutError): pass
    finally: probe.close()
    yield f'http://127.0.0.1:{srv.getsockname()[1]}'
    filler.close(); srv.close()

def _ends_within(fn, limit=LIMIT):
    "Run `fn` in a thread; fail if it is still running after `limit` s, else return (its exception or None, seconds)."
    out = {}
    def run():
        try: fn(); out['err'] = None
        except BaseException as e: out['err'] = e
    t0 = time.monotonic()
    th = threading.Thread(target=run, daemon=True); th.start(); th.join(limit)
    assert not th.is_alive(), f"the download was still waiting after {limit} s: it hangs"
    return out['err'], time.monotonic() - t0

def _check_timeout_error(err, secs, addr, files, root):
    assert isinstance(err, NAEError), repr(err)
    msg = str(err)
    assert secs < 10, f"took {secs:.1f} s with a 1 s timeout"
    assert 'failed' in msg and 'did not answer within 1 s' in msg and 'NAE_DOWNLOAD_TIMEOUT' in msg, msg
    assert 'by hand' in msg and addr in msg, msg
    for f in files: assert f'-> {root/f}' in msg, (f, msg)
    assert 'Traceback' not in msg
    assert socket.getdefaulttimeout() is None                    # nothing outlives the call

@pytest.mark.parametrize('load,files', [
    (load_mnist, ['MNIST/raw/train-images-idx3-ubyte.gz', 'MNIST/raw/t10k-labels-idx1-ubyte.gz']),
    (load_cifar10, ['cifar-10-python.tar.gz']),
    (load_svhn, ['train_32x32.mat']),
    (load_omniglot, ['omniglot-py/images_evaluation.zip'])])
def test_silent_server_times_out_with_a_clear_error(mirror, silent_server, tmp_path, monkeypatch, load, files):
    monkeypatch.setenv('NAE_DOWNLOAD_TIMEOUT', '1')
    mirror.patch(url=silent_server)
    err, secs = _ends_within(lambda: load(root=tmp_path, download=True))
    _check_timeout_error(err, secs, silent_server, files, tmp_path)

def test_dropped_connection_times_out_with_a_clear_error(mirror, dropping_server, tmp_path, monkeypatch):
    "No answer to the connection itself, as behind a firewall that drops packets (torchvision then tries the next mirror)."
    monkeypatch.setenv('NAE_DOWNLOAD_TIMEOUT', '1')
    mirror.patch(url=dropping_server)
    err, secs = _ends_within(lambda: load_mnist(root=tmp_path, download=True))
    _check_timeout_error(err, secs, dropping_server, ['MNIST/raw/train-images-idx3-ubyte.gz'], tmp_path)

def test_celeba_gdown_times_out(silent_server, tmp_path, monkeypatch):
    "CelebA goes through gdown, which uses requests without a timeout: the timeout reaches it too."
    requests = pytest.importorskip('requests')
    def download(id, output, quiet=False, user_agent=None, **kw):   # what gdown does: a session GET, no timeout
        with requests.Session() as s, s.get(f'{silent_server}/uc?id={id}', stream=True) as r:
            Path(output).write_bytes(r.content)
        return output
    monkeypatch.setitem(sys.modules, 'gdown', types.SimpleNamespace(download=download))
    monkeypatch.setenv('NAE_DOWNLOAD_TIMEOUT', '1')
    request = requests.Session.request
    err, secs = _ends_within(lambda: load_celeba(root=tmp_path, download=True))
    assert isinstance(err, NAEError) and secs < 10, (err, secs)
    msg = str(err)
    assert 'Downloading CelebA' in msg and 'did not answer within 1 s' in msg and 'NAE_DOWNLOAD_TIMEOUT' in msg, msg
    assert 'list_eval_partition.txt' in msg and f'into {tmp_path/"celeba"}' in msg
    assert requests.Session.request is request and socket.getdefaulttimeout() is None

def test_timeout_argument_and_restore(silent_server):
    "`download_timeout(s)` bounds urllib's waits inside the block; the socket default is back afterwards."
    import urllib.request
    before = socket.getdefaulttimeout()
    def fetch():
        with download_timeout(0.5) as t:
            assert t == 0.5 and socket.getdefaulttimeout() == 0.5
            urllib.request.urlopen(f'{silent_server}/x')
    err, secs = _ends_within(fetch)
    assert isinstance(err, OSError) and 'timed out' in str(err) and secs < 5, (err, secs)
    assert socket.getdefaulttimeout() == before
