//! The one call into the `gemm` crate. Its entry point takes raw pointers and strides; here
//! every matrix is a slice with its shape and strides, and [`matmul`] checks that each
//! matrix lies inside its slice and that the shapes agree before it hands the pointers over.
//! Everything else in this crate is safe Rust.

use gemm::Parallelism;

/// A read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

/// A writable matrix view, laid out as [`MatRef`].
#[derive(Debug)]
pub(crate) struct MatMut<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix whose rows are `row_stride` apart.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose, without moving anything.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

impl<'a> MatMut<'a> {
    /// A row-major matrix whose rows are `row_stride` apart.
    pub(crate) fn rows(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }
}

/// The index one past the last element a view reaches (0 when it is empty).
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + (cols - 1) * col_stride + 1
    }
}

/// How the product is spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// On the calling thread (the caller already runs in parallel).
    One,
    /// Over rayon's pool, with this many threads.
    Pool(usize),
}

/// `dst = scale · lhs × rhs`, or `dst += scale · lhs × rhs` when `accumulate`.
///
/// # Panics
/// When the shapes disagree or a view reaches past its slice: both are bugs in this crate,
/// never something a caller's tensors can cause (the public functions check those first).
pub(crate) fn matmul(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    scale: f32,
    accumulate: bool,
    threads: Threads,
) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert!(
        lhs.rows == m && rhs.rows == k && rhs.cols == n,
        "gemm shapes disagree"
    );
    assert!(extent(m, n, dst.row_stride, dst.col_stride) <= dst.data.len());
    assert!(extent(m, k, lhs.row_stride, lhs.col_stride) <= lhs.data.len());
    assert!(extent(k, n, rhs.row_stride, rhs.col_stride) <= rhs.data.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * dst.row_stride + j * dst.col_stride] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = match threads {
        Threads::Pool(n) if n > 1 => Parallelism::Rayon(n),
        _ => Parallelism::None,
    };
    let stride = |s: usize| s as isize;
    // SAFETY: the asserts above keep every element gemm reads or writes inside its slice
    // (all strides are non-negative), `dst` is borrowed mutably so nothing else aliases it,
    // and `m`, `n`, `k` are the views' own shapes.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            stride(dst.col_stride),
            stride(dst.row_stride),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}
