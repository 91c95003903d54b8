"""hol's compute operators, kept apart from the modules that use them (:mod:`hol.layers`) as
flash-attention's ``ops`` are from its ``layers``:

* :mod:`hol.ops.lagrange`: the piecewise Lagrange basis as tensor math (nodes, segment geometry,
  extrapolation), written once;
* :mod:`hol.ops.segment_sparse`: ``hol::segment_sparse_product`` and its two derivative products (C++ on the
  CPU, Triton on CUDA, torch's sparse ops elsewhere);
* :mod:`hol.ops.product_units`: ``hol::product_units`` and its backward (C++, Triton, torch formula);
* :mod:`hol.ops.lagrange_linear`: ``hol::lagrange_linear``, the basis values and their product with the
  weights fused, and its backward (C++, Triton, torch formula);
* :mod:`hol.ops.registration`: how every operator registers (custom operator with its torch formula as the
  default implementation, device kernels falling back to it, fake, FLOP formula) and when an entry point
  takes the formula instead;
* :mod:`hol.ops.cost`: the calibrated cost model behind ``backend="auto"``;
* :mod:`hol.ops.loader`: builds and caches the C++ kernels of ``hol/ops/csrc``.

The modules' functional API is :mod:`hol.functional`.
"""
