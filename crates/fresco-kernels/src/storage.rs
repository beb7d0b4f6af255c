//! Reading a custom op's inputs: the contiguous `f32` slices CPU storages and their layouts
//! describe, or an error naming the op and what it was given instead.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, bail};

/// The `f32` elements `layout` covers in `storage`, which must be contiguous.
pub(crate) fn contiguous_f32<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expects f32 tensors, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: expects contiguous tensors"),
    }
}

/// [`contiguous_f32`] of each `(storage, layout)` input, in order.
pub(crate) fn contiguous_f32s<'a, const N: usize>(
    op: &str,
    inputs: [(&'a CpuStorage, &Layout); N],
) -> Result<[&'a [f32]; N]> {
    let mut slices = [&[][..]; N];
    for (slot, (storage, layout)) in slices.iter_mut().zip(inputs) {
        *slot = contiguous_f32(op, storage, layout)?;
    }
    Ok(slices)
}
