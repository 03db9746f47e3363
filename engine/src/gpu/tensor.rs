//! Tensors as kernels bind them: a [`View`] (a whole storage buffer, or a tensor inside one such
//! as an arena's parameter) with a name (for errors) and a shape, checked once when the
//! [`Tensor`] is made, so kernel wrappers state shapes instead of repeating the checks.
//! Elements are 4 bytes (f32, or u32 for indices), row-major, from the view's offset.

use super::Gpu;
use crate::error::{EngineError, Result};

/// A dimension as the kernels index it: at least 1 and within u32.
pub fn dim(field: &'static str, value: usize) -> Result<u32> {
    if value == 0 {
        return Err(EngineError::invalid(field, value, "must be at least 1"));
    }
    u32::try_from(value).map_err(|_| EngineError::invalid(field, value, "must fit in 32 bits"))
}

/// Elements of a tensor of the given dimensions; kernels index them with u32.
pub fn elements(field: &'static str, dims: &[u32]) -> Result<u64> {
    let n = dims.iter().map(|&d| d as u64).product::<u64>();
    if n >= u32::MAX as u64 {
        return Err(EngineError::invalid(
            field,
            n,
            "too many elements for 32-bit indices",
        ));
    }
    Ok(n)
}

/// Checks that `buffer` holds at least `words` 4-byte elements and can be bound as storage.
pub fn check_buffer(
    gpu: &Gpu,
    field: &'static str,
    buffer: &wgpu::Buffer,
    words: u64,
) -> Result<()> {
    let need = words * 4;
    if buffer.size() < need {
        return Err(EngineError::invalid(
            field,
            format!("a buffer of {} bytes", buffer.size()),
            format!("needs at least {need} bytes ({words} elements)"),
        ));
    }
    if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
        return Err(EngineError::invalid(
            field,
            format!("{:?}", buffer.usage()),
            "must be a storage buffer",
        ));
    }
    gpu.check().storage_buffer(field, buffer.size())
}

/// A tensor inside a buffer, as a kernel binds it: a whole buffer, or a range of one (an
/// arena's tensor) starting at a multiple of the device's storage-offset alignment.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Where the tensor starts, in bytes.
    pub offset: u64,
    /// Its elements.
    pub len: usize,
}

impl<'a> View<'a> {
    /// The whole buffer as a view of its 4-byte elements.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        Self {
            buffer,
            offset: 0,
            len: (buffer.size() / 4) as usize,
        }
    }

    /// Its bytes.
    pub fn bytes(&self) -> u64 {
        self.len as u64 * 4
    }

    /// True when it is its whole buffer (bound without an offset or size).
    pub fn is_whole(&self) -> bool {
        self.offset == 0 && self.bytes() == self.buffer.size()
    }
}

impl<'a> From<&'a wgpu::Buffer> for View<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        Self::whole(buffer)
    }
}

/// Checks that `view` can be bound as storage: its buffer a storage buffer, the range inside it
/// at a multiple of the storage-offset alignment, and no larger than one binding may be.
pub fn check_view(gpu: &Gpu, field: &'static str, view: &View<'_>, words: u64) -> Result<()> {
    check_buffer(gpu, field, view.buffer, 0)?;
    let align = gpu.limits.min_storage_buffer_offset_alignment as u64;
    if !view.offset.is_multiple_of(align) || view.offset + view.bytes() > view.buffer.size() {
        return Err(EngineError::invalid(
            field,
            format!("{} bytes at offset {}", view.bytes(), view.offset),
            format!(
                "must lie in its buffer of {} bytes at a multiple of {align}",
                view.buffer.size()
            ),
        ));
    }
    if (view.len as u64) < words {
        return Err(EngineError::invalid(
            field,
            format!("a view of {} elements", view.len),
            format!("needs at least {words} elements"),
        ));
    }
    gpu.check().storage_buffer(field, view.bytes())
}

/// The most dimensions a [`Tensor`] has.
pub const MAX_RANK: usize = 6;

/// A view of a storage buffer as a tensor of 4-byte elements with its name (for errors) and
/// shape. Made once where the tensor is (an [`Arena`](super::Arena)'s parameter, a
/// [`TensorBuf`] of a pass's activations), so a kernel takes its sizes from its inputs and
/// states what the others must be ([`Tensor::expect`]) instead of being told every dimension.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    /// Where it lives.
    pub view: View<'a>,
    /// Its name in error messages.
    pub name: &'a str,
    /// Elements it holds (the product of its dimensions).
    pub len: u64,
    dims: [u32; MAX_RANK],
    rank: usize,
}

impl<'a> Tensor<'a> {
    /// Views `at` (a buffer or a [`View`]) as a tensor of `dims` (checked by [`dim`] where they
    /// came from the caller): the element count within 32-bit indices, and the view bindable
    /// as storage and large enough to hold it. Errors name the tensor.
    pub fn new(
        gpu: &Gpu,
        name: &'static str,
        at: impl Into<View<'a>>,
        dims: &[u32],
    ) -> Result<Self> {
        let len = elements(name, dims)?;
        let mut t = Self::flat(gpu, name, at, len)?;
        t.set_dims(dims)?;
        Ok(t)
    }

    /// Views `at` as `len` elements whose shape the kernel does not need (scratch space), with
    /// the same checks.
    pub fn flat(gpu: &Gpu, name: &'static str, at: impl Into<View<'a>>, len: u64) -> Result<Self> {
        let view = at.into();
        if view.is_whole() {
            check_buffer(gpu, name, view.buffer, len)?;
        } else {
            check_view(gpu, name, &view, len)?;
        }
        let mut dims = [1; MAX_RANK];
        dims[0] = len as u32;
        Ok(Self {
            view,
            name,
            len,
            dims,
            rank: 1,
        })
    }

    /// `view` as a tensor of `dims`, for views whose buffer was checked against the device when
    /// it was made (an arena's, a [`TensorBuf`]'s): every dimension at least 1, the elements
    /// within 32-bit indices and within the view.
    pub fn of(name: &'a str, view: View<'a>, dims: &[usize]) -> Result<Self> {
        let bad = |reason: String| EngineError::Tensor {
            tensor: name.to_string(),
            reason,
        };
        if dims.is_empty() || dims.len() > MAX_RANK || dims.contains(&0) {
            return Err(bad(format!(
                "shape {dims:?}: a tensor has 1 to {MAX_RANK} dimensions, each at least 1"
            )));
        }
        let len = dims.iter().map(|&d| d as u64).product::<u64>();
        if len >= u32::MAX as u64 {
            return Err(bad(format!(
                "shape {dims:?}: too many elements for 32-bit indices"
            )));
        }
        if (view.len as u64) < len {
            return Err(bad(format!(
                "shape {dims:?} needs {len} elements, but its view holds {}",
                view.len
            )));
        }
        let mut t = Self {
            view,
            name,
            len,
            dims: [1; MAX_RANK],
            rank: dims.len(),
        };
        for (to, &d) in t.dims.iter_mut().zip(dims) {
            *to = d as u32;
        }
        Ok(t)
    }

    /// All of `view` as a one-dimensional tensor: scratch space, or a list whose length the
    /// kernel checks with [`Tensor::expect_at_least`].
    pub fn all(name: &'a str, view: View<'a>) -> Result<Self> {
        Self::of(name, view, &[view.len.max(1)])
    }

    /// Refuses a tensor of fewer than `len` elements (scratch space, whose shape does not
    /// matter), naming it.
    pub fn expect_at_least(&self, len: u64) -> Result<()> {
        if self.len < len {
            return Err(self.bad(format!(
                "holds {} elements, but the kernel needs at least {len}",
                self.len
            )));
        }
        Ok(())
    }

    fn set_dims(&mut self, dims: &[u32]) -> Result<()> {
        if dims.is_empty() || dims.len() > MAX_RANK {
            return Err(self.bad(format!(
                "shape {dims:?}: a tensor has 1 to {MAX_RANK} dimensions"
            )));
        }
        self.dims[..dims.len()].copy_from_slice(dims);
        self.rank = dims.len();
        Ok(())
    }

    fn bad(&self, reason: String) -> EngineError {
        EngineError::Tensor {
            tensor: self.name.to_string(),
            reason,
        }
    }

    /// Its dimensions.
    pub fn dims(&self) -> &[u32] {
        &self.dims[..self.rank]
    }

    /// Its `N` dimensions, refusing a tensor of another rank.
    pub fn shape<const N: usize>(&self) -> Result<[u32; N]> {
        self.dims().try_into().map_err(|_| {
            self.bad(format!(
                "has shape {:?}, but the kernel needs {N} dimensions",
                self.dims()
            ))
        })
    }

    /// Its shape as a matrix: the leading dimensions as rows, the last as the width.
    pub fn matrix(&self) -> (u32, u32) {
        let width = self.dims[self.rank - 1];
        (self.len as u32 / width, width)
    }

    /// Refuses any shape but `dims`, naming the tensor and both shapes.
    pub fn expect(&self, dims: &[u32]) -> Result<()> {
        if self.dims() != dims {
            return Err(self.bad(format!(
                "has shape {:?}, but the kernel needs {dims:?}",
                self.dims()
            )));
        }
        Ok(())
    }

    /// Refuses a tensor that cannot be read as `rows` rows of `width` in place: its leading
    /// dimensions must multiply to `rows` and the rest to `width` (`[batch, pos, heads, d_head]`
    /// is `batch · pos` rows of `heads · d_head`).
    pub fn expect_matrix(&self, rows: u32, width: u32) -> Result<()> {
        let dims = self.dims();
        let fits = (0..=dims.len()).any(|k| {
            let lead = dims[..k].iter().map(|&d| d as u64).product::<u64>();
            let rest = dims[k..].iter().map(|&d| d as u64).product::<u64>();
            (lead, rest) == (rows as u64, width as u64)
        });
        if !fits {
            return Err(self.bad(format!(
                "has shape {:?}, but the kernel needs {rows} rows of {width}",
                self.dims()
            )));
        }
        Ok(())
    }

    /// Rows `first .. first + n` of the tensor read as a matrix ([`Tensor::matrix`]), as an
    /// `[n, width]` tensor in place (a chunk of a batch's positions); the caller picks chunks
    /// that start at a bindable offset.
    pub fn rows(&self, first: u32, n: u32) -> Result<Self> {
        let (rows, width) = self.matrix();
        if n == 0 || first as u64 + n as u64 > rows as u64 {
            return Err(self.bad(format!(
                "rows {first}..{} are not among its {rows}",
                first as u64 + n as u64
            )));
        }
        let view = View {
            buffer: self.view.buffer,
            offset: self.view.offset + first as u64 * width as u64 * 4,
            len: n as usize * width as usize,
        };
        Tensor::of(self.name, view, &[n as usize, width as usize])
    }

    /// The same elements as `dims` (their product unchanged), as a strided kernel reads them
    /// (`[rows, heads · d_head]` as `[rows, heads, d_head]`).
    pub fn reshaped(&self, dims: &[u32]) -> Result<Self> {
        let len = dims.iter().map(|&d| d as u64).product::<u64>();
        if len != self.len {
            return Err(self.bad(format!(
                "shape {:?} cannot be read as {dims:?}",
                self.dims()
            )));
        }
        let mut t = *self;
        t.set_dims(dims)?;
        Ok(t)
    }
}

/// A storage buffer holding one tensor of known shape: a pass's activation, made once per
/// shape and bound as a [`Tensor`] at every step.
#[derive(Debug)]
pub struct TensorBuf {
    /// The buffer (at least the tensor's size; pooled buffers may be larger).
    pub buffer: wgpu::Buffer,
    name: &'static str,
    dims: Vec<usize>,
}

impl TensorBuf {
    /// A buffer for `dims` from the device's pool, not zeroed, checked against the device's
    /// limits.
    pub fn dirty(gpu: &Gpu, name: &'static str, dims: &[usize]) -> Result<Self> {
        let len = dims.iter().product::<usize>();
        let buffer = gpu.storage_dirty::<f32>(name, len.max(1))?;
        let buf = Self {
            buffer,
            name,
            dims: dims.to_vec(),
        };
        buf.t()?;
        Ok(buf)
    }

    /// A buffer holding `values` as a tensor of `dims` (whose product must be their count).
    pub fn from_values(
        gpu: &Gpu,
        name: &'static str,
        dims: &[usize],
        values: &[f32],
    ) -> Result<Self> {
        let len = dims.iter().product::<usize>();
        if len != values.len() {
            return Err(EngineError::Tensor {
                tensor: name.to_string(),
                reason: format!("shape {dims:?} needs {len} values, given {}", values.len()),
            });
        }
        let buf = Self {
            buffer: gpu.storage_from(name, values)?,
            name,
            dims: dims.to_vec(),
        };
        buf.t()?;
        Ok(buf)
    }

    /// Its shape.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Its elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True when it holds no elements (never: every dimension is at least 1).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tensor, to bind.
    pub fn t(&self) -> Result<Tensor<'_>> {
        Tensor::of(self.name, View::whole(&self.buffer), &self.dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu_test;

    /// Shapes are checked where a tensor is made and where a kernel states what it needs, and
    /// every refusal names the tensor and both shapes.
    async fn shapes_are_checked_and_named(gpu: &Gpu) {
        let buf = gpu.storage_zeroed::<f32>("acts", 2 * 3 * 4 * 5).unwrap();
        let q = Tensor::of("blocks.0.attn.hook_q", (&buf).into(), &[2, 3, 4, 5]).unwrap();
        assert_eq!(q.dims(), &[2, 3, 4, 5]);
        assert_eq!(q.len, 120);
        assert_eq!(q.matrix(), (24, 5));
        assert_eq!(q.shape::<4>().unwrap(), [2, 3, 4, 5]);
        let e = q.shape::<3>().unwrap_err().to_string();
        assert!(e.contains("hook_q") && e.contains("3 dimensions"), "{e}");
        // Read in place as batch · pos rows of heads · d_head, or as 24 rows of d_head.
        q.expect_matrix(6, 20).unwrap();
        q.expect_matrix(24, 5).unwrap();
        q.expect_matrix(120, 1).unwrap();
        let e = q.expect_matrix(12, 10).unwrap_err().to_string();
        assert!(
            e.contains("blocks.0.attn.hook_q") && e.contains("[2, 3, 4, 5]"),
            "{e}"
        );
        assert!(e.contains("12 rows of 10"), "{e}");
        let e = q.expect(&[2, 3, 20]).unwrap_err().to_string();
        assert!(
            e.contains("[2, 3, 4, 5]") && e.contains("[2, 3, 20]"),
            "{e}"
        );
        // A view too small, a zero or too many dimensions.
        let e = Tensor::of("x", (&buf).into(), &[11, 11])
            .unwrap_err()
            .to_string();
        assert!(e.contains("x") && e.contains("121 elements"), "{e}");
        assert!(Tensor::of("x", (&buf).into(), &[0, 3]).is_err());
        assert!(Tensor::of("x", (&buf).into(), &[1; MAX_RANK + 1]).is_err());
        // Rows of the matrix in place, and reshapes that keep the count.
        let r = q.rows(6, 12).unwrap();
        assert_eq!(
            (r.view.offset, r.view.len, r.dims()),
            (6 * 5 * 4, 60, &[12, 5][..])
        );
        let e = q.rows(20, 5).unwrap_err().to_string();
        assert!(e.contains("rows 20..25") && e.contains("24"), "{e}");
        assert_eq!(q.reshaped(&[6, 20]).unwrap().dims(), &[6, 20]);
        assert!(q.reshaped(&[6, 21]).is_err());
        // A buffer made for a shape binds as that shape.
        let b = TensorBuf::dirty(gpu, "hook_resid_pre", &[2, 7, 3]).unwrap();
        assert_eq!((b.len(), b.t().unwrap().dims()), (42, &[2, 7, 3][..]));
    }
    gpu_test!(
        gpu_tensors_check_and_name_their_shapes,
        shapes_are_checked_and_named
    );
}
