//! Running a loop with the widest vector instructions the CPU has: [`vectorized`] hands a
//! closure to `pulp`'s run-time dispatch, which calls it inside a function compiled for
//! AVX-512 or AVX2 + FMA (plain SSE2 otherwise), so the plain Rust loops it inlines are
//! auto-vectorised for that width. The binaries stay portable: the choice is made per call
//! from the CPU's reported features.

use pulp::{Arch, Simd, WithSimd};

/// A closure run as a [`WithSimd`] operation.
struct Vectorized<F>(F);

impl<F: FnOnce() -> T, T> WithSimd for Vectorized<F> {
    type Output = T;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> T {
        (self.0)()
    }
}

/// Runs `f` compiled for the best instruction set available. `f` and everything it calls
/// should be `#[inline(always)]` for the loops to be compiled for that set.
#[inline(always)]
pub(crate) fn vectorized<T>(f: impl FnOnce() -> T) -> T {
    Arch::new().dispatch(Vectorized(f))
}
