"""Array backends: NumPy on the host, CuPy on a GPU.

This is the only module of cvxqreg that imports CuPy. Everything numerical receives a
:class:`Backend` and uses ``backend.xp`` (the array module) and the few helpers defined here, so the
same code runs on both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from types import ModuleType
from typing import Any

import numpy as np
import scipy.linalg

from .errors import BackendUnavailableError, InvalidInputError

__all__ = ["Backend", "array_module", "available_backends", "get_backend", "to_host"]

_NAMES = ("auto", "numpy", "cupy")

#: matrices below this size run with single-threaded host BLAS (see Backend.threads_for);
#: measured on the 2-core machine of benchmarks/results/threads.md: default solves were 8.7x
#: (D = 100), 4.8x (144), 1.9x (400), 1.4x (529), 1.1x (676) slower with 2 threads than with
#: one, and 1.2x faster at D = 841 (threads.md and threads_large.md there)
SMALL_DIM = 640

#: complex Hermitian matrices at least this large are diagonalized by LAPACK's MRRR driver
#: (``zheevr``), smaller ones and real ones by divide and conquer (``zheevd``/``dsyevd``); measured
#: (benchmarks/results/eigh_driver.md, eigh_driver_1thread.md): complex ``evd / evr`` time 1.07
#: at D = 1024, 1.13 at 1225, 1.26 at 1600, 1.44 at 2025 and 1.87 at 2500 with two threads (1.13,
#: 1.90, 2.14 at 1024, 1600, 2500 with one); real 0.61-0.89 everywhere
EVR_MIN_DIM = 1200

#: inside a one-thread section (:meth:`Backend.threads_for`) complex Hermitian matrices at least
#: this large are still diagonalized with the thread count from before it; measured on the
#: 2-core machine (benchmarks/results/eigh_threads.md): default / one thread 0.51-0.70 for
#: complex D = 400-625 (the QT1 iterate at 512: 0.55), 0.86-0.94 at 256; 0.80-1.20 for real
#: matrices and 0.73-1.05 for eigenvalues alone, so those stay on one thread
THREADED_EIGH_MIN_DIM = 384

#: :meth:`Backend.single` zeroes the components below this (relative to the largest)
SINGLE_FLOOR = 2.0**-60


@functools.lru_cache(maxsize=64)
def _values_workspace(n: int, cplx: bool) -> dict:
    """LAPACK's optimal workspace for ``syevd``/``heevd`` without eigenvectors (its query)."""
    lapack = scipy.linalg.lapack
    if cplx:
        w, iw, rw, info = lapack.zheevd_lwork(n, compute_v=0, lower=1)
        work = dict(lwork=int(w.real), liwork=int(iw), lrwork=int(rw))
    else:
        w, iw, info = lapack.dsyevd_lwork(n, compute_v=0, lower=1)
        work = dict(lwork=int(w), liwork=int(iw))
    return work if info == 0 else {}


def _diagonal(a: np.ndarray):
    """``(w, V)`` for a diagonal ``a`` (eigenvalues ascending, ``V`` a permutation matrix of
    ``a``'s dtype), else ``None``. A dual's first point is often diagonal (``alpha = 0`` with a
    diagonal or zero cost: every tomography solve starts there), where LAPACK still spends half
    a dense decomposition (58 ms against 129 ms at D = 512, complex); the test reads two
    off-diagonal entries, and all of them only when those two vanish."""
    n = a.shape[0]
    if n < 2 or a.ndim != 2 or not a.flags.c_contiguous or a[n - 1, 0] != 0 or a[1, 0] != 0:
        return None
    if np.any(a.reshape(-1)[1:].reshape(n - 1, n + 1)[:, :n]):
        return None
    d = np.real(np.diagonal(a))
    order = np.argsort(d, kind="stable")
    V = np.zeros_like(a, dtype=np.result_type(a.dtype, np.float64))
    V[order, np.arange(n)] = 1.0
    return d[order].astype(np.float64), V


def _syevd(a: np.ndarray, vectors: bool):
    """LAPACK ``syevd``/``heevd`` on the lower triangle of ``a``: ``(w, V)``, or ``(w,)`` without
    ``vectors``. Called through ``scipy.linalg.lapack`` directly: ``scipy.linalg.eigh``'s argument
    handling and workspace query cost about 20 us per call, a third of the whole decomposition at
    D = 16 (benchmarks/results/small_overhead.md)."""
    a = np.asarray(a)
    if a.dtype not in (np.float64, np.complex128):
        a = a.astype(np.result_type(a.dtype, np.float64))
    cplx = np.iscomplexobj(a)
    fn = scipy.linalg.lapack.zheevd if cplx else scipy.linalg.lapack.dsyevd
    # with vectors the wrappers' default workspace is LAPACK's optimum; without, it is the
    # minimum, which forces the unblocked tridiagonal reduction: ask LAPACK for its optimum
    work = {} if vectors else _values_workspace(a.shape[0], cplx)
    w, V, info = fn(a, compute_v=int(vectors), lower=1, **work)
    if info != 0:
        raise np.linalg.LinAlgError(f"eigendecomposition failed (LAPACK info {info})")
    return (w, V) if vectors else (w,)


@dataclasses.dataclass(frozen=True)
class Backend:
    """An array backend.

    Attributes
    ----------
    name : {"numpy", "cupy"}
        Which library holds the arrays.
    xp : module
        The array module (``numpy`` or ``cupy``).
    device : str
        Human-readable description of where the arrays live.
    reason : str
        Why this backend was chosen (useful with ``backend="auto"``).
    """

    name: str
    xp: ModuleType = dataclasses.field(repr=False)
    device: str = dataclasses.field(default="cpu", compare=False)
    reason: str = dataclasses.field(default="", compare=False)

    def __reduce__(self):
        """Pickled by name (a module does not pickle): the process that unpickles it resolves its
        own array module and device, e.g. each Dask worker its own GPU."""
        return (get_backend, (self.name,))

    def asarray(self, a: Any, dtype: Any = None):
        """Move ``a`` to this backend (a no-op when it is already there)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """Return ``a`` as a NumPy array on the host."""
        if self.name == "cupy" and not isinstance(a, np.ndarray):
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def eigh(self, a: Any):
        """Eigendecomposition ``a = V diag(w) V^*`` of a Hermitian matrix, eigenvalues ascending.

        Only the lower triangle of ``a`` is read. NumPy calls LAPACK's divide-and-conquer driver
        (``heevd``) through SciPy's LAPACK wrappers without checking the input, or its MRRR driver
        (``heevr``) for complex matrices of size at least :data:`EVR_MIN_DIM`, where that is
        faster (its eigenvectors are orthonormal to about ``1e-12`` rather than ``1e-14``;
        benchmarks/results/eigh_driver.md); CuPy uses cuSOLVER.
        """
        if self.name == "numpy":
            diagonal = _diagonal(np.asarray(a))
            if diagonal is not None:
                return diagonal
            if np.iscomplexobj(a) and a.shape[0] >= EVR_MIN_DIM:
                return scipy.linalg.eigh(a, overwrite_a=False, check_finite=False, driver="evr")
            if np.iscomplexobj(a) and a.shape[0] >= THREADED_EIGH_MIN_DIM and _threads_before() > 1:
                with blas_controller().limit(limits=_threads_before(), user_api="blas"):
                    return _syevd(a, True)
            return _syevd(a, True)
        return self.xp.linalg.eigh(a)

    def eigvalsh(self, a: Any):
        """Eigenvalues (ascending) of a Hermitian matrix."""
        if self.name == "numpy":
            return _syevd(a, False)[0]
        return self.xp.linalg.eigvalsh(a)

    def sparse(self, matrix: Any):
        """Move a SciPy sparse matrix to this backend (CSR; ``cupyx.scipy.sparse`` on a GPU)."""
        import scipy.sparse as sp

        csr = sp.csr_matrix(matrix)
        if self.name == "numpy":
            return csr
        from cupyx.scipy import sparse as cusparse

        return cusparse.csr_matrix(csr)

    def outer(self, V: Any):
        """``V V^*`` (Hermitian) for a ``D x r`` matrix: BLAS ``herk``/``syrk`` on the host, which
        computes one triangle (about half the flops of a general product), then mirrors it."""
        if self.name != "numpy":
            return V @ V.conj().T
        from scipy.linalg import blas

        herk = blas.zherk if np.iscomplexobj(V) else blas.dsyrk
        C = herk(1.0, V, lower=1)  # lower triangle; the strict upper part is zero
        X = C + C.conj().T
        idx = np.diag_indices(C.shape[0])
        X[idx] -= C[idx]
        return X

    def single(self, a: Any, scale: bool = True) -> tuple[Any, float]:
        """``(b, s)`` with ``b = a / s`` in single precision (``float32`` / ``complex64``),
        ``s = max |Re a_ij|, |Im a_ij|`` (``1`` with ``scale=False`` or for a zero ``a``), and
        every component of ``b`` below :data:`SINGLE_FLOOR` set to zero.

        After the floor no product of two entries of such matrices is subnormal (``2^-120`` is
        above ``float32``'s ``2^-126``): x86 processors handle subnormal operands and results
        by microcode, up to 100 times slower (a one-off measurement: a ``D = 512`` Hessian
        product took 183 ms instead of 35 ms in single precision with only the eigenvectors'
        tiny entries zeroed, not those of every factor). The
        components zeroed are below ``2^-60`` of the largest, far below single precision's
        rounding (``2^-24``).
        """
        xp = self.xp
        dtype = xp.complex64 if xp.iscomplexobj(a) else xp.float32
        with np.errstate(over="ignore"):
            b = a.astype(dtype)
        r = b.ravel(order="A").view(xp.float32)  # a view: b is C or F contiguous
        s = max(float(r.max()), -float(r.min())) if scale and r.size else 1.0
        if scale and r.size and not 2.0**-100 <= s <= 2.0**100:
            # outside float32's comfortable range (or cast to zero): scale in double precision
            s = float(xp.max(xp.abs(a.real)))
            if xp.iscomplexobj(a):
                s = max(s, float(xp.max(xp.abs(a.imag))))
            if not (s > 0 and np.isfinite(s)):
                s = 1.0
            b = (a * (1.0 / s)).astype(dtype)
            r = b.ravel(order="A").view(xp.float32)  # a view: b is C or F contiguous
        elif s != 1.0:
            r *= xp.float32(1.0 / s)
        r[xp.abs(r) < SINGLE_FLOOR] = 0
        return b, s

    def threads_for(self, dim: int):
        """Context manager limiting host BLAS to one thread for small matrices.

        Below ``SMALL_DIM`` the per-call thread wake-up of a multithreaded OpenBLAS costs more
        than the arithmetic (measured: a D = 25 transport solve took 12 s with 2 threads on a
        loaded 2-core machine and 0.3 s with 1; on an idle one, QWD at D = 144 took 2.4 s with 2
        threads and 0.49 s with 1, ``benchmarks/results/threads.md``). No-op on a GPU or for
        large ``dim``.
        """
        if self.name != "numpy" or dim >= SMALL_DIM:
            return contextlib.nullcontext()
        return _one_thread()

    def synchronize(self) -> None:
        """Wait for queued device work to finish (for honest timings); no-op on the host."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()

    def timer(self) -> float:
        """``time.perf_counter()`` after synchronizing the device."""
        self.synchronize()
        return time.perf_counter()


@functools.cache
def blas_controller():
    """A cached ``threadpoolctl.ThreadpoolController`` (building one inspects every loaded
    library: about 10 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


#: the thread counts in force before each open one-thread section (innermost last): complex
#: eigendecompositions of at least THREADED_EIGH_MIN_DIM run with it
_ONE_THREAD: list[int] = []


def _threads_before() -> int:
    """The thread count before the innermost open one-thread section (``0`` outside any)."""
    return _ONE_THREAD[-1] if _ONE_THREAD else 0


@contextlib.contextmanager
def _one_thread():
    """Host BLAS limited to one thread (:meth:`Backend.threads_for`), remembering the count
    before it for :meth:`Backend.eigh`."""
    # the libraries' own controllers: ThreadpoolController.info() and .limit() rebuild their
    # records on every call (about 75 us, a few percent of a solve at D = 16)
    blas = [lc for lc in blas_controller().lib_controllers if lc.user_api == "blas"]
    counts = [lc.get_num_threads() for lc in blas]
    for lc, n in zip(blas, counts, strict=True):
        if n != 1:
            lc.set_num_threads(1)
    _ONE_THREAD.append(max(counts, default=1))
    try:
        yield
    finally:
        _ONE_THREAD.pop()
        for lc, n in zip(blas, counts, strict=True):
            if n != 1:
                lc.set_num_threads(n)


def blas_threads() -> str:
    """The BLAS libraries loaded and their thread counts, e.g. ``"openblas 1"`` (for benchmark
    headers: timings on a shared machine are comparable only at a fixed thread count)."""
    return ", ".join(
        f"{i['internal_api']} {i['num_threads']}"
        for i in blas_controller().info()
        if i["user_api"] == "blas"
    )


@functools.cache
def _numpy_backend(reason: str) -> Backend:
    return Backend(name="numpy", xp=np, device="cpu", reason=reason)


@functools.cache
def _cupy_status() -> tuple[ModuleType | None, str]:
    """Import CuPy and check for a device. Returns (module or None, explanation)."""
    try:
        import cupy  # the only CuPy import in the package
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy is installed but CUDA is unusable ({type(exc).__name__}: {exc})"
    if n < 1:
        return None, "CuPy is installed but no CUDA device is visible"
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    except Exception:
        name = "CUDA device"
    return cupy, name


def array_module(a: Any) -> ModuleType:
    """The array module of ``a``: CuPy for a CuPy array, NumPy for anything else.

    For functions that receive arrays without a :class:`Backend` (the regularizers' spectral
    functions). CuPy is never imported for a host array.
    """
    if type(a).__module__.split(".")[0] == "cupy":
        return _cupy_status()[0]
    return np


def to_host(a: Any) -> np.ndarray:
    """``a`` as a NumPy array on the host (a copy off the device for a CuPy array)."""
    xp = array_module(a)
    return np.asarray(a) if xp is np else xp.asnumpy(a)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine (``"numpy"`` always, ``"cupy"`` with a GPU)."""
    mod, _ = _cupy_status()
    return ["numpy", "cupy"] if mod is not None else ["numpy"]


def get_backend(backend: str | Backend = "auto") -> Backend:
    """Resolve a backend by name.

    Parameters
    ----------
    backend : {"auto", "numpy", "cupy"} or Backend
        ``"auto"`` picks CuPy when a GPU is usable and NumPy otherwise, and records why in
        :attr:`Backend.reason`. ``"cupy"`` without a usable GPU raises
        :class:`~cvxqreg.errors.BackendUnavailableError`.
    """
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str) or backend.lower() not in _NAMES:
        raise InvalidInputError(
            f"backend must be one of {_NAMES} or a Backend instance, got {backend!r}"
        )
    name = backend.lower()
    if name == "numpy":
        return _numpy_backend("requested")
    mod, info = _cupy_status()
    if name == "cupy":
        if mod is None:
            raise BackendUnavailableError(
                f"backend='cupy' was requested but {info}. Install the GPU extra "
                "(pip install 'cvxqreg[gpu]') on a machine with an NVIDIA GPU, or use "
                "backend='numpy'."
            )
        return Backend(name="cupy", xp=mod, device=info, reason="requested")
    if mod is None:
        return _numpy_backend(f"auto: {info}; using NumPy")
    return Backend(name="cupy", xp=mod, device=info, reason="auto: GPU available")
