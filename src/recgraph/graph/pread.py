"""Reading an on-disk array without mapping it: ``pread`` from Python and from numba kernels.

Pages of a memory-mapped file that a process reads count in its resident set (and the kernel maps
~16 pages around each fault), so a kernel that walks a memory-mapped CSR over a graph larger than
RAM holds whatever rows it visited. Reading the rows with ``pread(2)`` into a small buffer instead
keeps the file in the page cache (shared, reclaimable) and out of the RSS. numpy and numba offer no
``pread`` for compiled code, so :func:`pread_into` is a numba intrinsic that calls libc's ``pread``
by name (cacheable: the symbol is resolved when the compiled code is loaded).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["memmap_region", "pread_into"]


def memmap_region(a) -> tuple[str, int] | None:
    """``(file name, byte offset of element 0)`` when ``a`` is a 1-d C-contiguous ``np.memmap`` opened
    on a file (as ``np.load(path, mmap_mode=...)`` returns it), else ``None`` (an in-memory array, a
    view of a memmap, an anonymous map)."""
    fname = getattr(a, "filename", None)
    if (isinstance(a, np.memmap) and fname and a.ndim == 1 and a.flags.c_contiguous
            and getattr(a, "_mmap", None) is not None):
        return str(fname), int(a.offset)
    return None


@intrinsic
def pread_into(typingctx, fd, out, nbytes, offset):
    """``pread(fd, out.ctypes.data, nbytes, offset)`` in nopython code: reads up to ``nbytes`` bytes at
    file ``offset`` into the start of the contiguous array ``out`` (the caller keeps ``nbytes <=
    out.nbytes``) and returns the bytes read (``< nbytes`` at end of file, ``-1`` on error)."""
    if not (isinstance(out, types.Array) and out.layout == "C"):
        return None
    sig = types.int64(types.int64, out, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        fd_v, out_v, n_v, off_v = args
        data = context.make_array(signature.args[1])(context, builder, out_v).data
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [ir.IntType(32), ir.IntType(8).as_pointer(), i64, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "pread")
        return builder.call(fn, [builder.trunc(fd_v, ir.IntType(32)),
                                 builder.bitcast(data, ir.IntType(8).as_pointer()), n_v, off_v])

    return sig, codegen
