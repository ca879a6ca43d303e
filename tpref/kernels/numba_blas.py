"""BLAS products inside Numba kernels that ``np.dot`` does not offer.

``add_tn_product(a, b, c)`` is ``c += a.T @ b`` as one GEMM with beta = 1. Numba's ``np.dot``
always overwrites its output (beta = 0), so summing block products into one accumulator
took a scratch product plus an element-wise add of the whole (p, q) result per block; at the
block sizes where OpenBLAS's unpacked small-matrix kernels apply (config.SMALL_GEMM_MNK) that
add is a tenth of the product's time.

The call goes through the same entry point as Numba's own ``np.dot`` (``numba_xxgemm`` of
Numba's helper library, which calls SciPy's ``cython_blas`` ?gemm), so kernels using it are
cached on disk like any other (a ctypes function pointer would not be), and BLAS threads are
controlled the same way (threadpoolctl on SciPy's OpenBLAS). A change here invalidates
the cached kernels that call it (``jit_cache.JIT_SOURCES``).
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind

from .jit_cache import CACHE

_JIT = dict(cache=CACHE, error_model="numpy")


@intrinsic
def _gemm_tn_acc(typingctx, a, b, c):
    """c += a.T @ b for C-contiguous 2-D arrays of one float dtype, shapes not checked."""
    arrays = (a, b, c)
    if not all(isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" for t in arrays):
        return None
    if not (a.dtype == b.dtype == c.dtype) or a.dtype not in (types.float32, types.float64):
        return None
    ensure_blas()
    dtype = a.dtype

    def codegen(context, builder, sig, args):
        a_arr, b_arr, c_arr = (context.make_array(t)(context, builder, v)
                               for t, v in zip(sig.args, args))
        rows, p = cgutils.unpack_tuple(builder, a_arr.shape, 2)        # a: (rows, p)
        q = cgutils.unpack_tuple(builder, b_arr.shape, 2)[1]           # b: (rows, q)
        char = ir.IntType(8)
        intp = context.get_value_type(types.intp)
        void_p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp,
                                                void_p, void_p, intp, void_p, intp, void_p,
                                                void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        one = cgutils.alloca_once_value(builder, context.get_constant(dtype, 1.0))
        kind = ir.Constant(char, ord(get_blas_kind(dtype)))
        # Column-major view: c is c' (q, p), a is a' (p, rows), b is b' (q, rows), so
        # c' += b' a'^T, i.e. gemm("n", "t", m=q, n=p, k=rows, lda=q, ldb=p, ldc=q).
        res = builder.call(fn, (kind, ir.Constant(char, ord("n")), ir.Constant(char, ord("t")),
                                q, p, rows, builder.bitcast(one, void_p),
                                builder.bitcast(b_arr.data, void_p), q,
                                builder.bitcast(a_arr.data, void_p), p,
                                builder.bitcast(one, void_p),
                                builder.bitcast(c_arr.data, void_p), q))
        check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return types.none(a, b, c), codegen


@njit(**_JIT)
def add_tn_product(a, b, c):
    """c += a.T @ b in place, one BLAS GEMM (beta = 1).

    Parameters
    ----------
    a : ndarray of shape (rows, p), C-contiguous
    b : ndarray of shape (rows, q), C-contiguous, a's dtype (float32 or float64)
    c : ndarray of shape (p, q), C-contiguous, a's dtype; accumulated in place
    """
    rows, p = a.shape
    q = b.shape[1]
    if b.shape[0] != rows or c.shape[0] != p or c.shape[1] != q:
        raise ValueError("add_tn_product: expected a (rows, p), b (rows, q), c (p, q)")
    if rows > 0 and p > 0 and q > 0:
        _gemm_tn_acc(a, b, c)
