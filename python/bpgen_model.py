"""bpgen_model.py: a model built by `bpgen SPEC --shared -o model.so`, from Python.

ctypes and numpy only, no compiled extension.  The model's whole state (inputs,
params, grads, activations, batchnorm statistics) is one 64-byte aligned numpy
buffer that this object owns; every tensor is a numpy view of it, by its spec
name, so writing m.params["W1"][...] = w sets the param the next forward reads,
and m.grads["W1"] holds dloss/dW1 after backward.

    $ bpgen specs/makemore.spec --dtype f64 --shared -o makemore.so
    >>> from bpgen_model import Model
    >>> m = Model("./makemore.so", seed=42)      # params from the spec's initialisers
    >>> m.inputs["X"][...] = X; m.inputs["Y"][...] = Y
    >>> loss = m.forward(); m.backward(); m.step(0.1)   # or m.step(1e-3, "adamw")

Views stay valid as long as the Model lives.  The library's functions are not
safe to call on one Model from two threads at once (as the C API).
"""
import ctypes
import os

import numpy as np

_DTYPES = {0: np.float32, 1: np.float64, 2: np.int32}   # BpDType
_KINDS = {0: "input", 1: "param", 2: "grad", 3: "act", 4: "stat"}   # BpKind
_MAXRANK = 6


class Model:
    """One state of the model in the shared library at `path`."""

    def __init__(self, path, seed=2147483647):
        # a path as given, not a name for the loader to search (as ./model.so)
        self.lib = lib = ctypes.CDLL(os.path.abspath(path) if os.path.exists(path) else path)
        try:
            lib.bpgen_abi_version.restype = ctypes.c_int
            version = lib.bpgen_abi_version()
        except AttributeError:
            raise ValueError(f"{path}: not a library built by `bpgen SPEC --shared -o FILE.so`") from None
        if version != 1:
            raise ValueError(f"{path}: bpgen --shared ABI version {version}; this module reads version 1")
        lib.bpgen_prefix.restype = ctypes.c_char_p
        lib.bpgen_state_size.restype = ctypes.c_size_t
        lib.bpgen_nparam.restype = ctypes.c_size_t
        lib.bpgen_tensor.restype = ctypes.c_char_p
        lib.bpgen_tensor.argtypes = [ctypes.c_int] + [ctypes.POINTER(ctypes.c_int)] * 3 + [
            ctypes.POINTER(ctypes.c_int * _MAXRANK), ctypes.POINTER(ctypes.c_size_t)]
        self.prefix = p = lib.bpgen_prefix().decode()
        self.dtype = _DTYPES[lib.bpgen_dtype()]
        self.nparam = lib.bpgen_nparam()

        def fn(name, restype, *argtypes):
            f = getattr(lib, f"{p}_{name}")
            f.restype, f.argtypes = restype, [ctypes.c_void_p] + list(argtypes)
            return f

        real_p = ctypes.c_void_p
        self._init = fn("init", None, ctypes.c_uint64)
        self._forward = fn("forward", ctypes.c_double)
        self._backward = fn("backward", None)
        self._forward_eval = fn("forward_eval", ctypes.c_double)
        self._sgd = fn("sgd_step", None, ctypes.c_double)
        self._adamw = fn("adamw_step", None, real_p, real_p, ctypes.c_long, ctypes.c_double,
                         ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double)
        self._set_threads = getattr(lib, f"{p}_set_threads")
        self._set_threads.restype, self._set_threads.argtypes = None, [ctypes.c_int]

        size = lib.bpgen_state_size()
        self._buf = np.zeros(size + 64, np.uint8)
        start = -self._buf.ctypes.data % 64
        self._state = self._buf[start:start + size]
        self._ptr = ctypes.c_void_p(self._state.ctypes.data)

        self.tensors, self.kinds = {}, {}
        kind, dt, rank = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        dims, off = (ctypes.c_int * _MAXRANK)(), ctypes.c_size_t()
        for i in range(lib.bpgen_ntensors()):
            name = lib.bpgen_tensor(i, ctypes.byref(kind), ctypes.byref(dt), ctypes.byref(rank),
                                    ctypes.byref(dims), ctypes.byref(off)).decode()
            shape = tuple(dims[k] for k in range(rank.value))
            t = _DTYPES[dt.value]
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(t).itemsize
            self.tensors[name] = self._state[off.value:off.value + nbytes].view(t).reshape(shape)
            self.kinds[name] = _KINDS[kind.value]
        by = lambda k: {n: a for n, a in self.tensors.items() if self.kinds[n] == k}
        self.inputs, self.params, self.stats = by("input"), by("param"), by("stat")
        # the gradient of each param, by the param's name (the table calls it "d" + name)
        self.grads = {n: self.tensors["d" + n] for n in self.params}
        self._m = np.zeros(self.nparam, self.dtype)   # AdamW moments (step(..., "adamw"))
        self._v = np.zeros(self.nparam, self.dtype)
        self.t = 0                                    # AdamW updates done
        self.init(seed)

    def init(self, seed=2147483647):
        """Params from the spec's initialisers; grads, statistics and AdamW state zeroed."""
        self._init(self._ptr, seed)
        self._m[:] = 0
        self._v[:] = 0
        self.t = 0

    def forward(self):
        """Training-mode forward (batchnorm from the batch); returns the loss."""
        return self._forward(self._ptr)

    def backward(self):
        """After forward: every gradient (m.grads, and m.tensors["d" + name])."""
        self._backward(self._ptr)

    def forward_eval(self):
        """Inference forward (batchnorm from the stored statistics); returns the loss."""
        return self._forward_eval(self._ptr)

    def step(self, lr, optimizer="sgd", betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        """One update from the gradients: sgd (params -= lr * grads) or adamw
        (torch.optim.AdamW's update; the moments live in this object)."""
        if optimizer == "sgd":
            self._sgd(self._ptr, lr)
        elif optimizer == "adamw":
            self.t += 1
            self._adamw(self._ptr, self._m.ctypes.data, self._v.ctypes.data, self.t, lr,
                        betas[0], betas[1], eps, weight_decay)
        else:
            raise ValueError(f"optimizer {optimizer!r}: sgd or adamw")

    def set_threads(self, n):
        """Threads of the heavy kernels (1 to 64): the same results for any count."""
        self._set_threads(int(n))
