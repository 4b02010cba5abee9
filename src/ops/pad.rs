//! Zero padding and cropping of the last two axes (real and complex); each is the other's
//! adjoint. Kernels: `backend/cpu/strided.rs` (window copies), `backend/gpu/pad.rs`.

use crate::backend::cpu::strided::copy_window;
use crate::backend::gpu::pad::{self as gpu, Planes};
use crate::backend::gpu::{GpuBuffer, GpuContext};
use crate::backend::C32;
use crate::engine::dispatch::{Args, Kernel, Meta, Out};
use crate::engine::storage::{CpuStorage, DType};
use crate::engine::tensor::{hw_of, Backward, Saved, Tensor};
use crate::error::{Error, Result};

/// Pad (`crop == false`): the input lands at `(top, left)` of a zero `(oh, ow)` image. Crop:
/// the window of `(oh, ow)` at `(top, left)` of the input is kept.
struct Window {
    crop: bool,
    top: usize,
    left: usize,
    oh: usize,
    ow: usize,
}

impl Window {
    fn name_of(crop: bool) -> &'static str {
        if crop {
            "crop2d"
        } else {
            "pad2d"
        }
    }
}

impl Kernel for Window {
    fn name(&self) -> &'static str {
        Window::name_of(self.crop)
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let s = x[0].shape;
        let (h, w) = hw_of(self.name(), s)?;
        if self.crop && (self.top + self.oh > h || self.left + self.ow > w) {
            return Err(Error::shape(
                "crop2d",
                s,
                format!(
                    "window rows {}..{} cols {}..{} outside",
                    self.top,
                    self.top + self.oh,
                    self.left,
                    self.left + self.ow
                ),
            ));
        }
        let mut out = s.to_vec();
        let r = out.len();
        out[r - 2] = self.oh;
        out[r - 1] = self.ow;
        Ok(vec![Out::new(out, x[0].dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let s = x.shape(0);
        let hw = hw_of(self.name(), s)?;
        let batch = s.iter().product::<usize>() / (hw.0 * hw.1).max(1);
        let n = batch * self.oh * self.ow;
        let out_hw = (self.oh, self.ow);
        let (src_at, dst_at, size) = if self.crop {
            ((self.top, self.left), (0, 0), out_hw)
        } else {
            ((0, 0), (self.top, self.left), hw)
        };
        Ok(vec![match x.dtype(0) {
            DType::F32 => {
                let mut out = vec![0f32; n];
                copy_window(x.real(0)?, hw, src_at, &mut out, out_hw, dst_at, size);
                CpuStorage::F32(out)
            }
            DType::C32 => {
                let mut out = vec![C32::new(0.0, 0.0); n];
                copy_window(x.complex(0)?, hw, src_at, &mut out, out_hw, dst_at, size);
                CpuStorage::C32(out)
            }
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let s = x.shape(0);
        let (h, w) = hw_of(self.name(), s)?;
        let planes = Planes {
            planes: s.iter().product::<usize>() / (h * w).max(1),
            h,
            w,
            complex: x.dtype(0) == DType::C32,
        };
        let (t, l) = (self.top, self.left);
        Ok(vec![if self.crop {
            gpu::crop2d(ctx, x.buf(0), planes, t, self.oh, l, self.ow)?
        } else {
            gpu::pad2d(
                ctx,
                x.buf(0),
                planes,
                t,
                self.oh - h - t,
                l,
                self.ow - w - l,
            )?
        }])
    }
}

impl Backward for Window {
    // pad:  dx = crop(dy) (the padded region's gradient is dropped)
    // crop: dx = zero-pad(dy) back to the input size
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (h, w) = s.inputs[0].hw(self.name())?;
        let adjoint = Window {
            crop: !self.crop,
            top: self.top,
            left: self.left,
            oh: h,
            ow: w,
        };
        Ok(vec![Some(Tensor::apply(adjoint, &[g])?)])
    }
}

impl Tensor {
    /// Zero padding of the last two axes by `(top, bottom, left, right)`.
    /// VJP: `dx = crop(dy)` (the padded region's gradient is dropped).
    pub fn pad2d(&self, top: usize, bottom: usize, left: usize, right: usize) -> Result<Tensor> {
        let (h, w) = self.hw("pad2d")?;
        let op = Window {
            crop: false,
            top,
            left,
            oh: h + top + bottom,
            ow: w + left + right,
        };
        Tensor::apply(op, &[self])
    }

    /// Keeps rows `[row0, row0+rows)` and columns `[col0, col0+cols)` of the last two axes.
    /// VJP: `dx = zero-pad(dy)` back to the input size.
    pub fn crop2d(&self, row0: usize, rows: usize, col0: usize, cols: usize) -> Result<Tensor> {
        let op = Window {
            crop: true,
            top: row0,
            left: col0,
            oh: rows,
            ow: cols,
        };
        Tensor::apply(op, &[self])
    }
}
