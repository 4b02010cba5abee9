//! 2-D convolution (PyTorch's `conv2d`: cross-correlation, stride 1, zero "same" padding k/2,
//! odd square kernels), NCHW, with optional bias, and its fusion with a leaky ReLU. Kernels in
//! `backend/cpu/conv.rs` and `backend/gpu/conv.rs`.

use crate::backend::cpu::conv as cpu;
use crate::backend::gpu::{conv as gpu, elementwise as gew, GpuBuffer, GpuContext};
use crate::backend::{ConvShape, UnaryOp};
use crate::engine::dispatch::{expect_real, Args, Kernel, Meta, Out};
use crate::engine::profile;
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::{Error, Result};

/// `y = act(conv2d(x, w) + b)` with `act` the identity or a leaky ReLU of slope > 0.
struct Conv2d {
    s: ConvShape,
    slope: Option<f32>,
}

impl Kernel for Conv2d {
    fn name(&self) -> &'static str {
        if self.slope.is_some() {
            "conv2d_leaky"
        } else {
            "conv2d"
        }
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        let s = &self.s;
        Ok(vec![Out::real(vec![s.n, s.cout, s.h, s.w])])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let s = &self.s;
        let mut y = vec![0f32; s.y_len()];
        let bias = if x.len() > 2 { Some(x.real(2)?) } else { None };
        match self.slope {
            Some(a) => cpu::conv2d_forward_leaky(s, x.real(0)?, x.real(1)?, bias, a, &mut y),
            None => cpu::conv2d_forward(s, x.real(0)?, x.real(1)?, bias, &mut y),
        }
        Ok(vec![CpuStorage::F32(y)])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let bias = (x.len() > 2).then(|| x.buf(2));
        let z = gpu::conv2d(ctx, &self.s, x.buf(0), x.buf(1), bias)?;
        Ok(vec![match self.slope {
            // y = leaky_relu(z); z is released right away
            Some(a) => gew::unary(ctx, UnaryOp::LeakyRelu(a), &z)?,
            None => z,
        }])
    }
}

impl Backward for Conv2d {
    // z = conv2d(x, w) + b, y = act(z):
    // dz = dy act'(z) (leaky: 1 where y > 0, else slope; y and z share their sign)
    // dx = conv(dz, w flipped in space, transposed in channels),
    // dw[o,i,u,v] = sum_{n,p} dz[n,o,p] x[n,i,p+(u,v)-k/2], db[o] = sum_{n,p} dz[n,o,p]
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let k = ConvGrad {
            s: self.s,
            slope: self.slope,
            need_dx: s.inputs[0].is_tracked(),
            has_bias: s.inputs.len() > 2,
        };
        let mut inputs = vec![g, &s.inputs[0], &s.inputs[1]];
        if self.slope.is_some() {
            inputs.push(s.output);
        }
        let mut grads = Tensor::compute(&k, &inputs)?.into_iter();
        let dx = if k.need_dx { grads.next() } else { None };
        let mut out = vec![dx, grads.next()];
        if k.has_bias {
            out.push(grads.next());
        }
        Ok(out)
    }
}

/// The VJP kernel of [`Conv2d`]: inputs `(dy, x, w[, y])`, outputs `([dx,] dw[, db])`.
struct ConvGrad {
    s: ConvShape,
    slope: Option<f32>,
    need_dx: bool,
    has_bias: bool,
}

impl Kernel for ConvGrad {
    fn name(&self) -> &'static str {
        "conv2d_backward"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        let s = &self.s;
        let mut out = Vec::new();
        if self.need_dx {
            out.push(Out::real(vec![s.n, s.cin, s.h, s.w]));
        }
        out.push(Out::real(vec![s.cout, s.cin, s.k, s.k]));
        if self.has_bias {
            out.push(Out::real(vec![s.cout]));
        }
        Ok(out)
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let s = &self.s;
        let gz_owned;
        let gy = match self.slope {
            Some(a) => {
                let (y, dy) = (x.real(3)?, x.real(0)?);
                gz_owned = profile::time("conv2d_backward/leaky", || {
                    crate::backend::cpu::elementwise::unary_backward(UnaryOp::LeakyRelu(a), y, dy)
                });
                &gz_owned[..]
            }
            None => x.real(0)?,
        };
        let mut out = Vec::new();
        if self.need_dx {
            let w = x.real(2)?;
            let gx = profile::time("conv2d_backward/dx", || {
                let mut gx = vec![0f32; s.x_len()];
                cpu::conv2d_backward_input(s, gy, w, &mut gx);
                gx
            });
            out.push(CpuStorage::F32(gx));
        }
        let mut gw = vec![0f32; s.w_len()];
        let mut gb = vec![0f32; s.cout];
        let gbias = self.has_bias.then_some(&mut gb[..]);
        let xin = x.real(1)?;
        profile::time("conv2d_backward/dw", || {
            cpu::conv2d_backward_weight(s, xin, gy, &mut gw, gbias)
        });
        out.push(CpuStorage::F32(gw));
        if self.has_bias {
            out.push(CpuStorage::F32(gb));
        }
        Ok(out)
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let gz_owned;
        let gy = match self.slope {
            Some(a) => {
                // dz = dy (y > 0 ? 1 : slope): leaky_relu's VJP evaluated at y
                gz_owned = gew::unary_backward(ctx, UnaryOp::LeakyRelu(a), x.buf(3), x.buf(0))?;
                &gz_owned
            }
            None => x.buf(0),
        };
        let mut out = Vec::new();
        if self.need_dx {
            out.push(gpu::conv2d_backward_input(ctx, &self.s, gy, x.buf(2))?);
        }
        let (dw, db) = gpu::conv2d_backward_weight(ctx, &self.s, x.buf(1), gy)?;
        out.push(dw);
        if self.has_bias {
            out.push(db);
        }
        Ok(out)
    }
}

fn conv_shape(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<ConvShape> {
    const OP: &str = "conv2d";
    x.expect_rank(OP, 4)?;
    w.expect_rank(OP, 4)?;
    let (xs, ws) = (x.shape(), w.shape());
    if ws[1] != xs[1] || ws[2] != ws[3] || ws[2] % 2 == 0 {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: xs.to_vec(),
            rhs: ws.to_vec(),
        });
    }
    if let Some(b) = b {
        if b.shape() != [ws[0]] {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: ws.to_vec(),
                rhs: b.shape().to_vec(),
            });
        }
    }
    Ok(ConvShape {
        n: xs[0],
        cin: xs[1],
        cout: ws[0],
        h: xs[2],
        w: xs[3],
        k: ws[2],
    })
}

impl Tensor {
    /// `y[n,o] = b[o] + sum_i w[o,i] (*) x[n,i]` (cross-correlation, same size as x).
    ///
    /// VJP: `dx = conv(dy, w flipped in space, transposed in channels)`,
    /// `dw[o,i,u,v] = sum_{n,p} dy[n,o,p] x[n,i,p+(u,v)-k/2]`, `db[o] = sum_{n,p} dy[n,o,p]`.
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let s = conv_shape(self, weight, bias)?;
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Tensor::apply(Conv2d { s, slope: None }, &inputs)
    }

    /// `leaky_relu(conv2d(x, w) + b, slope)` in one pass (slope > 0), as in every autoencoder
    /// block. VJP: `dz = dy * (y > 0 ? 1 : slope)` (y and z share their sign), then conv2d's VJP.
    pub fn conv2d_leaky(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        slope: f32,
    ) -> Result<Tensor> {
        if slope.is_nan() || slope <= 0.0 {
            return self.conv2d(weight, bias)?.leaky_relu(slope);
        }
        let s = conv_shape(self, weight, bias)?;
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Tensor::apply(
            Conv2d {
                s,
                slope: Some(slope),
            },
            &inputs,
        )
    }
}
