//! Bilinear resampling through an affine map, zero outside, differentiable in the image and in
//! the map's six parameters (a rotation and an offset built by tensor ops upstream train
//! through it). Kernels: `backend/cpu/sample.rs`, `backend/gpu/sample.rs`
//! (+ `kernels/affine_sample.wgsl`).

use crate::backend::cpu::sample as cpu;
use crate::backend::gpu::{sample as gpu, GpuBuffer, GpuContext};
use crate::backend::SampleShape;
use crate::engine::device::Device;
use crate::engine::dispatch::{expect_real, Args, Kernel, Meta, Out};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{numel_of, Backward, Saved, Tensor};
use crate::error::{Error, Result};

const OP: &str = "affine_sample";

/// Which computation: the forward (inputs `(x, affine)`), its VJP in x (inputs
/// `(dy, affine)`), or the gradient in the sample position (inputs `(x, affine, dy)`, output
/// `(2, out_h, out_w)`: `dL/ds_c`, `dL/ds_r` summed over N and C).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Forward,
    GradX,
    GradPos,
}

struct AffineSample {
    part: Part,
    /// (N, C, H, W) of x.
    x: [usize; 4],
    /// (out_h, out_w).
    out: [usize; 2],
}

impl AffineSample {
    fn shape(&self) -> SampleShape {
        let [n, c, h, w] = self.x;
        SampleShape {
            planes: n * c,
            h,
            w,
            oh: self.out[0],
            ow: self.out[1],
        }
    }
}

impl Kernel for AffineSample {
    fn name(&self) -> &'static str {
        match self.part {
            Part::Forward => OP,
            Part::GradX => "affine_sample_grad_x",
            Part::GradPos => "affine_sample_grad_pos",
        }
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let op = self.name();
        expect_real(op, x)?;
        let want = if self.part == Part::GradPos { 3 } else { 2 };
        if x.len() != want {
            return Err(Error::arg(
                op,
                format!("{} inputs, expected {want}", x.len()),
            ));
        }
        if numel_of(x[1].shape) != 6 {
            return Err(Error::shape(
                op,
                x[1].shape,
                "the affine map needs 6 elements",
            ));
        }
        let [n, c, h, w] = self.x;
        let [oh, ow] = self.out;
        let (y, img) = (vec![n, c, oh, ow], self.x.to_vec());
        // x[0]: x (forward, grad_pos) or dy (grad_x); x[2]: dy (grad_pos)
        let mut want = vec![(0, if self.part == Part::GradX { &y } else { &img })];
        if self.part == Part::GradPos {
            want.push((2, &y));
        }
        for (k, shape) in want {
            if x[k].shape != shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: x[k].shape.to_vec(),
                    rhs: shape.clone(),
                });
            }
        }
        Ok(vec![Out::real(match self.part {
            Part::Forward => y,
            Part::GradX => vec![n, c, h, w],
            Part::GradPos => vec![2, oh, ow],
        })])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let s = self.shape();
        let (src, a) = (x.real(0)?, x.real(1)?);
        Ok(vec![CpuStorage::F32(match self.part {
            Part::Forward => cpu::affine_sample(&s, src, a),
            Part::GradX => cpu::affine_sample_grad_x(&s, src, a),
            Part::GradPos => cpu::affine_sample_grad_pos(&s, src, a, x.real(2)?),
        })])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let s = self.shape();
        let (src, a) = (x.buf(0), x.buf(1));
        Ok(vec![match self.part {
            Part::Forward => gpu::affine_sample(ctx, &s, src, a)?,
            Part::GradX => gpu::affine_sample_grad_x(ctx, &s, src, a)?,
            Part::GradPos => gpu::affine_sample_grad_pos(ctx, &s, src, a, x.buf(2))?,
        }])
    }
}

/// `(1, 3, oh, ow)`: the column index j, the row index i and ones, on `device` (constants).
fn coordinate_planes(oh: usize, ow: usize, device: Device) -> Result<Tensor> {
    let n = oh * ow;
    let mut v = Vec::with_capacity(3 * n);
    v.extend((0..n).map(|o| (o % ow) as f32));
    v.extend((0..n).map(|o| (o / ow) as f32));
    v.extend(std::iter::repeat_n(1.0, n));
    Tensor::from_shape_vec(&[1, 3, oh, ow], v)?.to_device(device)
}

impl Backward for AffineSample {
    // y = S(A, b) x, linear in x: dx = S^T dy (grad_x).
    // With s_c = a_cc j + a_cr i + b_c and s_r = a_rc j + a_rr i + b_r and
    // gs = (dL/ds_c, dL/ds_r) per output pixel summed over N and C (grad_pos):
    //   d[a_cc, a_cr, b_c] = sum_ij gs_c [j, i, 1],  d[a_rc, a_rr, b_r] = sum_ij gs_r [j, i, 1]
    // as tensor ops: gs (2, 1, oh, ow) times the planes [J, I, 1] (1, 3, oh, ow), summed over
    // the pixels -> (2, 3), row-major the parameters' order.
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (x, a) = (&s.inputs[0], &s.inputs[1]);
        let dx = if x.is_tracked() {
            let k = AffineSample {
                part: Part::GradX,
                ..*self
            };
            Some(Tensor::compute(&k, &[g, a])?.remove(0))
        } else {
            None
        };
        let da = if a.is_tracked() {
            let k = AffineSample {
                part: Part::GradPos,
                ..*self
            };
            let gs = Tensor::compute(&k, &[x, a, g])?.remove(0);
            let [oh, ow] = self.out;
            let planes = coordinate_planes(oh, ow, g.device())?;
            let d = gs
                .reshape(&[2, 1, oh, ow])?
                .mul(&planes)?
                .sum_axes(&[2, 3], false)?;
            Some(d.reshape(a.shape())?)
        } else {
            None
        };
        Ok(vec![dx, da])
    }
}

impl Tensor {
    /// Bilinear resampling through an affine map, zero outside.
    ///
    /// x is (N, C, H, W) real; `affine` holds six real numbers (any shape, usually (6,))
    /// `[a_cc, a_cr, b_c, a_rc, a_rr, b_r]`; y is (N, C, out_h, out_w) with
    /// `y[n, c, i, j] = bilinear(x[n, c], s_r, s_c)` at
    /// `s_c = a_cc j + a_cr i + b_c`, `s_r = a_rc j + a_rr i + b_r`, in pixel units of x (pixel
    /// (r, c) sits at integer coordinates (r, c)): the taps `floor(s_r) + {0, 1}`,
    /// `floor(s_c) + {0, 1}` with weights `(1 - f, f)`; taps outside the image contribute 0.
    /// The identity map with `out = (H, W)` returns x.
    ///
    /// Differentiable in x and in the affine parameters. VJP: `dx = S^T dy`; the parameters'
    /// gradient is that of the piecewise-bilinear, zero-extended image
    /// (`dy/ds_c = (1 - fr)(x01 - x00) + fr (x11 - x10)`, likewise `dy/ds_r`), times the
    /// output's column index j, row index i or 1, summed. The affine tensor stays on its device
    /// (a trained tensor is never read back).
    ///
    /// GPU limit: the VJP in x is a gather that visits at most 64 outputs per axis for each
    /// input pixel, enough for magnifications (output pixels per input pixel) up to about 30
    /// (about 21 under a 45-degree rotation); beyond that, or for a (near-)singular linear
    /// part, the GPU's dx misses contributions. The CPU has no limit.
    ///
    /// ```
    /// use magprior::Tensor;
    /// let x = Tensor::from_shape_vec(&[1, 1, 2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    /// // half a pixel to the right: s_c = j + 0.5, s_r = i
    /// let a = Tensor::from_shape_vec(&[6], vec![1.0, 0.0, 0.5, 0.0, 1.0, 0.0]).unwrap();
    /// let y = x.affine_sample(&a, 2, 3).unwrap().to_vec().unwrap();
    /// assert_eq!(y, vec![1.5, 2.5, 1.5, 4.5, 5.5, 3.0]);
    /// ```
    pub fn affine_sample(&self, affine: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
        self.expect_rank(OP, 4)?;
        if affine.numel() != 6 {
            return Err(Error::shape(
                OP,
                affine.shape(),
                "the affine map needs 6 elements [a_cc, a_cr, b_c, a_rc, a_rr, b_r]",
            ));
        }
        if out_h == 0 || out_w == 0 {
            return Err(Error::arg(
                OP,
                format!("output size {out_h}x{out_w} is empty"),
            ));
        }
        let s = self.shape();
        if s[2] == 0 || s[3] == 0 {
            return Err(Error::shape(OP, s, "empty input plane"));
        }
        let op = AffineSample {
            part: Part::Forward,
            x: [s[0], s[1], s[2], s[3]],
            out: [out_h, out_w],
        };
        Tensor::apply(op, &[self, affine])
    }
}
