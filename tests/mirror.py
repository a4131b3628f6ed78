"""A local stand-in for the data sets' download servers, so that `download=True` can be tested offline.

Small archives in the real formats are written to a folder and served by `http.server` on 127.0.0.1
(loopback only; nothing leaves the machine):

* MNIST and FashionMNIST: the four gzipped IDX files, as torchvision's mirrors serve them;
* CIFAR-10: `cifar-10-python.tar.gz` holding the pickled batches of `cifar-10-batches-py/`;
* SVHN: `train_32x32.mat` and `test_32x32.mat` (MATLAB files, written with scipy);
* Omniglot: `images_evaluation.zip` of 105x105 PNG strokes.

Use it in a test through the `mirror` fixture of `conftest.py`:

    def test_something(mirror, tmp_path):
        mirror.patch()                                   # torchvision's addresses (and MD5s) -> the local server
        X, y = load_mnist('test', root=tmp_path, download=True)
        assert torch.equal(y, mirror.truth['MNIST']['test'][1])

`patch()` changes only torchvision's class attributes that hold the addresses (`MNIST.mirrors`,
`CIFAR10.url`, ...) and, where torchvision checks the files' MD5 against its own list, that list
(the tiny files have their own checksums); the monkeypatch undoes it after the test.

Without a server, `make_tiny_mnist(root)` writes a tiny MNIST straight into `root/MNIST/raw/`, the
unpacked layout torchvision reads (it checks no checksum there), e.g. to pre-fill a data folder that
`NAE_DATA` then points to for a notebook run in another process.
"""
import gzip, hashlib, io, pickle, socket, struct, tarfile, threading, zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import numpy as np

def _md5(p) -> str: return hashlib.md5(Path(p).read_bytes()).hexdigest()

def tiny_images(n:int, shape:tuple, seed:int=0, n_classes:int=10):
    "`(x, y)`: n uint8 images of `shape` (H, W) or (H, W, C) whose bright band depends on the label, plus noise; labels cycle 0..9."
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    h = shape[0]
    for i, k in enumerate(y):
        r0 = int(k * h / n_classes)
        x[i, r0:r0 + max(h // n_classes, 2)] = 255
    return x, y.astype(np.uint8)

def _idx(arr:np.ndarray) -> bytes:
    "The IDX encoding of a uint8 array (magic 0x08 = unsigned byte, then the dimensions big-endian)."
    return struct.pack('>BBBB', 0, 0, 0x08, arr.ndim) + struct.pack(f'>{arr.ndim}I', *arr.shape) + arr.tobytes()

_IDX = {('train', 'x'): 'train-images-idx3-ubyte', ('train', 'y'): 'train-labels-idx1-ubyte',
        ('test', 'x'): 't10k-images-idx3-ubyte', ('test', 'y'): 't10k-labels-idx1-ubyte'}

def _mnist_arrays(n_train, n_test, seed):
    return {s: tiny_images(n, (28, 28), seed + i) for i, (s, n) in enumerate((('train', n_train), ('test', n_test)))}

def make_tiny_mnist(root, # a data folder: writes root/<name>/raw/
                    n_train:int=600, n_test:int=200, seed:int=0,
                    name:str='MNIST', # or 'FashionMNIST'
                   ) -> dict:
    "Write a tiny MNIST (unpacked IDX files) where torchvision reads it; returns {split: (x, y)} as written."
    raw = Path(root)/name/'raw'; raw.mkdir(parents=True, exist_ok=True)
    arrs = _mnist_arrays(n_train, n_test, seed)
    for (s, k), f in _IDX.items(): (raw/f).write_bytes(_idx(arrs[s][0 if k == 'x' else 1]))
    return arrs

def _write_idx_gz(folder, arrs) -> dict:
    "The four .gz files of an MNIST-style mirror; returns {file name: md5}."
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for (s, k), f in _IDX.items():
        p = folder/f'{f}.gz'
        p.write_bytes(gzip.compress(_idx(arrs[s][0 if k == 'x' else 1]), mtime=0))
        md5[p.name] = _md5(p)
    return md5

def _write_cifar(folder, n_per_batch=20, n_test=30, seed=0):
    "cifar-10-python.tar.gz with 5 training batches, a test batch and batches.meta; returns (truth, md5s)."
    folder.mkdir(parents=True, exist_ok=True)
    files, md5, tr = {}, {}, []
    for i in range(1, 6):
        x, y = tiny_images(n_per_batch, (32, 32, 3), seed + i)
        tr.append((x, y))
        files[f'data_batch_{i}'] = dict(data=x.transpose(0, 3, 1, 2).reshape(len(x), -1), labels=y.tolist(),
                                        batch_label=f'training batch {i} of 5', filenames=[f'{j}.png' for j in range(len(x))])
    xt, yt = tiny_images(n_test, (32, 32, 3), seed + 9)
    files['test_batch'] = dict(data=xt.transpose(0, 3, 1, 2).reshape(len(xt), -1), labels=yt.tolist(),
                               batch_label='testing batch 1 of 1', filenames=[f'{j}.png' for j in range(len(xt))])
    files['batches.meta'] = dict(label_names=['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                                              'ship', 'truck'], num_cases_per_batch=n_per_batch, num_vis=3072)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for name, d in files.items():
            b = pickle.dumps(d, protocol=2)
            md5[name] = hashlib.md5(b).hexdigest()
            ti = tarfile.TarInfo(f'cifar-10-batches-py/{name}'); ti.size = len(b)
            tar.addfile(ti, io.BytesIO(b))
    p = folder/'cifar-10-python.tar.gz'; p.write_bytes(buf.getvalue()); md5[p.name] = _md5(p)
    truth = dict(train=(np.concatenate([x for x, _ in tr]), np.concatenate([y for _, y in tr])), test=(xt, yt))
    return truth, md5

def _write_svhn(folder, n_train=40, n_test=20, seed=0):
    "train_32x32.mat and test_32x32.mat (X: 32x32x3xN, y: Nx1 with 10 for the digit 0); returns (truth, md5s)."
    from scipy.io import savemat
    folder.mkdir(parents=True, exist_ok=True)
    truth, md5 = {}, {}
    for i, (s, n) in enumerate((('train', n_train), ('test', n_test))):
        x, y = tiny_images(n, (32, 32, 3), seed + 20 + i)
        savemat(folder/f'{s}_32x32.mat', dict(X=x.transpose(1, 2, 3, 0), y=np.where(y == 0, 10, y).reshape(-1, 1).astype(np.uint8)))
        truth[s] = (x, y); md5[s] = _md5(folder/f'{s}_32x32.mat')
    return truth, md5

def _write_omniglot(folder, seed=0):
    "images_evaluation.zip: 2 alphabets x 2 characters x 3 drawings of 105x105 grey PNGs; returns (n images, md5)."
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng, n = np.random.default_rng(seed), 0
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        for a in ('Alpha', 'Beta'):
            for c in ('character01', 'character02'):
                for k in range(3):
                    img = np.full((105, 105), 255, np.uint8); r = rng.integers(10, 90)
                    img[r:r + 8, 10:95] = 0                                        # a black stroke on white
                    b = io.BytesIO(); Image.fromarray(img, 'L').save(b, format='PNG')
                    z.writestr(f'images_evaluation/{a}/{c}/{k:04d}.png', b.getvalue()); n += 1
    p = folder/'images_evaluation.zip'; p.write_bytes(buf.getvalue())
    return n, _md5(p)

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address): pass   # a client that hangs up early (torchvision's redirect probe)

class Mirror:
    "A folder of tiny data-set archives served on 127.0.0.1; `patch()` points torchvision at it."
    def __init__(self, folder, monkeypatch=None):
        self.folder, self.mp = Path(folder), monkeypatch
        self.folder.mkdir(parents=True, exist_ok=True)
        self.truth, self.md5 = {}, {}
        for name, seed in (('MNIST', 0), ('FashionMNIST', 100)):
            self.truth[name] = _mnist_arrays(600, 200, seed)
            self.md5[name] = _write_idx_gz(self.folder/name.lower(), self.truth[name])
        self.truth['CIFAR-10'], self.md5['CIFAR-10'] = _write_cifar(self.folder/'cifar')
        self.truth['SVHN'], self.md5['SVHN'] = _write_svhn(self.folder/'svhn')
        self.truth['Omniglot'], self.md5['Omniglot'] = _write_omniglot(self.folder/'omniglot')
        self.requests = []                               # the paths asked for, in order
        srv = self
        class _Logged(_Quiet):
            def do_GET(self): srv.requests.append(self.path); return super().do_GET()
        self.server = _Server(('127.0.0.1', 0), partial(_Logged, directory=str(self.folder)))
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def patch(self, monkeypatch=None, url:str|None=None):
        "Point torchvision's MNIST, FashionMNIST, CIFAR10, SVHN and Omniglot at `url` (default: this mirror), with the tiny files' MD5s."
        from torchvision.datasets import MNIST, FashionMNIST, CIFAR10, SVHN, Omniglot
        mp = monkeypatch or self.mp
        u = url or self.url
        for var in ('no_proxy', 'NO_PROXY'): mp.setenv(var, '127.0.0.1,localhost')
        for cls, name in ((MNIST, 'MNIST'), (FashionMNIST, 'FashionMNIST')):
            mp.setattr(cls, 'mirrors', [f'{u}/{name.lower()}/'])
            mp.setattr(cls, 'resources', [(f, self.md5[name][f]) for f, _ in cls.resources])
        m = self.md5['CIFAR-10']
        mp.setattr(CIFAR10, 'url', f'{u}/cifar/cifar-10-python.tar.gz')
        mp.setattr(CIFAR10, 'tgz_md5', m['cifar-10-python.tar.gz'])
        mp.setattr(CIFAR10, 'train_list', [[f, m[f]] for f, _ in CIFAR10.train_list])
        mp.setattr(CIFAR10, 'test_list', [[f, m[f]] for f, _ in CIFAR10.test_list])
        mp.setattr(CIFAR10, 'meta', dict(CIFAR10.meta, md5=m['batches.meta']))
        mp.setattr(SVHN, 'split_list', {s: [f'{u}/svhn/{s}_32x32.mat', f'{s}_32x32.mat', self.md5['SVHN'].get(s, v[2])]
                                        for s, v in SVHN.split_list.items()})
        mp.setattr(Omniglot, 'download_url_prefix', f'{u}/omniglot')
        mp.setattr(Omniglot, 'zips_md5', dict(Omniglot.zips_md5, images_evaluation=self.md5['Omniglot']))
        return self

    def close(self):
        self.server.shutdown(); self.server.server_close()

def closed_port() -> int:
    "A loopback port that nothing listens on (bound, then released): connecting to it is refused at once."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def serve_mirror(folder, monkeypatch=None) -> Mirror:
    "Write the tiny archives into `folder` and serve them on 127.0.0.1; call `.patch()` to use it, `.close()` to stop."
    return Mirror(folder, monkeypatch)
