//! Instance normalisation: each (sample, channel) plane normalised over H, W (biased variance),
//! then an optional per-channel affine map. The forward saves `(mean, rstd)` per plane.

use crate::backend::cpu::norm as cpu;
use crate::backend::gpu::norm as gpu;
use crate::backend::gpu::{GpuBuffer, GpuContext};
use crate::backend::NormShape;
use crate::engine::dispatch::{expect_real, Args, Kernel, Meta, Out};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::{Error, Result};

const OP: &str = "instance_norm";

/// Inputs `(x[, w][, b])`; outputs `(y, stats)`.
struct InstanceNorm {
    shape: NormShape,
    has_w: bool,
    has_b: bool,
    eps: f32,
}

impl InstanceNorm {
    /// The optional weight and bias among inputs starting at index 1.
    fn affine<T: Copy>(&self, x: &[T]) -> (Option<T>, Option<T>) {
        let w = self.has_w.then(|| x[1]);
        let b = self.has_b.then(|| x[1 + self.has_w as usize]);
        (w, b)
    }
}

impl Kernel for InstanceNorm {
    fn name(&self) -> &'static str {
        OP
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(OP, x)?;
        let planes = self.shape.n * self.shape.c;
        Ok(vec![
            Out::real(x[0].shape.to_vec()),
            Out::real(vec![planes, 2]),
        ])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let data = (0..x.len())
            .map(|i| x.real(i))
            .collect::<Result<Vec<_>>>()?;
        let (w, b) = self.affine(&data);
        let (y, stats) = cpu::instance_norm(data[0], &self.shape, w, b, self.eps);
        Ok(vec![CpuStorage::F32(y), CpuStorage::F32(stats)])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let (w, b) = self.affine(&x.data);
        let (y, stats) = gpu::instance_norm(ctx, &self.shape, x.buf(0), w, b, self.eps)?;
        Ok(vec![y, stats])
    }
}

impl Backward for InstanceNorm {
    // With xh = (x - mean) rstd and gh = dy w[c] (means over a plane's m pixels):
    // dx = rstd (gh - mean(gh) - xh mean(gh xh)), dw[c] = sum_{n,p} dy xh, db[c] = sum_{n,p} dy
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let k = NormGrad {
            shape: self.shape,
            has_w: self.has_w,
            need_dx: s.inputs[0].is_tracked(),
        };
        let mut inputs = vec![g, &s.inputs[0], &s.extra[0]];
        if self.has_w {
            inputs.push(&s.inputs[1]);
        }
        let mut grads = Tensor::compute(&k, &inputs)?.into_iter();
        let dx = if k.need_dx { grads.next() } else { None };
        let (dw, db) = (grads.next(), grads.next());
        let mut out = vec![dx];
        if self.has_w {
            out.push(dw);
        }
        if self.has_b {
            out.push(db);
        }
        Ok(out)
    }
}

/// The VJP kernel: inputs `(dy, x, stats[, w])`, outputs `([dx,] dw, db)`.
struct NormGrad {
    shape: NormShape,
    has_w: bool,
    need_dx: bool,
}

impl Kernel for NormGrad {
    fn name(&self) -> &'static str {
        "instance_norm_backward"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        let c = self.shape.c;
        let mut out = Vec::new();
        if self.need_dx {
            out.push(Out::real(x[1].shape.to_vec()));
        }
        out.extend([Out::real(vec![c]), Out::real(vec![c])]);
        Ok(out)
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let w = if self.has_w { Some(x.real(3)?) } else { None };
        let (dx, dw, db) = cpu::instance_norm_backward(
            x.real(1)?,
            x.real(2)?,
            x.real(0)?,
            &self.shape,
            w,
            self.need_dx,
        );
        let mut out: Vec<CpuStorage> = dx.into_iter().map(CpuStorage::F32).collect();
        out.extend([CpuStorage::F32(dw), CpuStorage::F32(db)]);
        Ok(out)
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let w = self.has_w.then(|| x.buf(3));
        let (dx, dw, db) =
            gpu::instance_norm_backward(ctx, &self.shape, x.buf(1), w, x.buf(2), x.buf(0))?;
        let mut out = Vec::new();
        if self.need_dx {
            out.push(dx);
        }
        out.extend([dw, db]);
        Ok(out)
    }
}

impl Tensor {
    /// `y = (x - mean) / sqrt(var + eps) * w[c] + b[c]` per (n, c) plane; x is (N, C, H, W).
    ///
    /// VJP, with `xh = (x - mean) rstd` and `gh = dy w[c]` (means over the plane's m pixels):
    /// `dx = rstd (gh - mean(gh) - xh mean(gh xh))`, `dw[c] = sum_{n,p} dy xh`, `db[c] = sum_{n,p} dy`.
    pub fn instance_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        self.expect_rank(OP, 4)?;
        let s = self.shape();
        let shape = NormShape {
            n: s[0],
            c: s[1],
            m: s[2] * s[3],
        };
        if shape.m * shape.n * shape.c == 0 {
            return Err(Error::shape(OP, s, "empty planes"));
        }
        for p in [weight, bias].into_iter().flatten() {
            if p.shape() != [shape.c] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: s.to_vec(),
                    rhs: p.shape().to_vec(),
                });
            }
        }
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let op = InstanceNorm {
            shape,
            has_w: weight.is_some(),
            has_b: bias.is_some(),
            eps,
        };
        Tensor::apply(op, &inputs)
    }
}
