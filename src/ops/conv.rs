//! 2-D convolution (PyTorch's `conv2d`: cross-correlation, stride 1, zero "same" padding k/2,
//! odd square kernels), NCHW, with optional bias. Kernels in `cpu/conv.rs`.

use crate::cpu::conv::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward, conv2d_forward_leaky, ConvShape,
};
use crate::error::{Error, Result};
use crate::gpu::conv as gconv;
use crate::gpu::elementwise::{self as gew, Unary};
use crate::gpu::{GpuBuffer, GpuContext};
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor};

fn gshape(s: &ConvShape) -> gconv::ConvShape {
    gconv::ConvShape {
        n: s.n,
        cin: s.cin,
        cout: s.cout,
        h: s.h,
        w: s.w,
        k: s.k,
    }
}

/// GPU forward: `conv2d(x, w) + b` (`kernels/conv2d.wgsl`).
fn gpu_forward(
    ctx: &GpuContext,
    s: &ConvShape,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<GpuBuffer> {
    const OP: &str = "conv2d";
    let bias = b.map(|b| b.gbuf(OP)).transpose()?;
    gconv::conv2d(ctx, &gshape(s), &x.gbuf(OP)?, &w.gbuf(OP)?, bias.as_ref())
}

/// GPU VJP of a conv for upstream `gy` (a device buffer): dx (if x is tracked), dw, db.
fn gpu_backward(
    ctx: &GpuContext,
    s: &ConvShape,
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
    gy: &GpuBuffer,
) -> Result<Vec<Option<Tensor>>> {
    const OP: &str = "conv2d";
    let gs = gshape(s);
    let wrap = |shape: &[usize], b: GpuBuffer| {
        Tensor::from_storage(shape.to_vec(), Storage::gpu(b, DType::F32))
    };
    let gx = if x.is_tracked() {
        Some(wrap(
            x.shape(),
            gconv::conv2d_backward_input(ctx, &gs, gy, &w.gbuf(OP)?)?,
        ))
    } else {
        None
    };
    let (dw, db) = gconv::conv2d_backward_weight(ctx, &gs, &x.gbuf(OP)?, gy)?;
    let mut out = vec![gx, Some(wrap(w.shape(), dw))];
    if has_bias {
        out.push(Some(wrap(&[s.cout], db)));
    } else {
        ctx.recycle(db);
    }
    Ok(out)
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

/// The weight/bias/input gradients of a conv for upstream `gy` (already through any activation).
fn conv_backward(
    s: &ConvShape,
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
    gy: &[f32],
) -> Result<Vec<Option<Tensor>>> {
    let gx = if x.is_tracked() {
        let mut gx = vec![0f32; x.numel()];
        conv2d_backward_input(s, gy, w.read().f32("conv2d")?, &mut gx);
        Some(Tensor::from_shape_vec(x.shape(), gx)?)
    } else {
        None
    };
    let mut gw = vec![0f32; w.numel()];
    let mut gb = vec![0f32; s.cout];
    conv2d_backward_weight(
        s,
        x.read().f32("conv2d")?,
        gy,
        &mut gw,
        has_bias.then_some(&mut gb[..]),
    );
    let mut out = vec![gx, Some(Tensor::from_shape_vec(w.shape(), gw)?)];
    if has_bias {
        out.push(Some(Tensor::from_shape_vec(&[s.cout], gb)?));
    }
    Ok(out)
}

/// CPU forward, optionally with the leaky-ReLU applied as the output is written.
fn cpu_forward(
    s: &ConvShape,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    slope: Option<f32>,
) -> Result<Storage> {
    let mut y = vec![0f32; s.n * s.cout * s.h * s.w];
    let bias_guard = bias.map(|b| b.read());
    let bias_data = match &bias_guard {
        Some(g) => Some(g.f32("conv2d")?),
        None => None,
    };
    let (xs, ws) = (x.read(), w.read());
    let (xd, wd) = (xs.f32("conv2d")?, ws.f32("conv2d")?);
    match slope {
        Some(a) => conv2d_forward_leaky(s, xd, wd, bias_data, a, &mut y),
        None => conv2d_forward(s, xd, wd, bias_data, &mut y),
    }
    Ok(Storage::from_f32(y))
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
        let storage = match gpu_of("conv2d", &inputs)? {
            Some(ctx) => Storage::gpu(gpu_forward(ctx, &s, self, weight, bias)?, DType::F32),
            None => cpu_forward(&s, self, weight, bias, None)?,
        };
        let (x, w) = (self.clone(), weight.clone());
        let has_bias = bias.is_some();
        Ok(Tensor::from_op(
            vec![s.n, s.cout, s.h, s.w],
            storage,
            "conv2d",
            &inputs,
            move |g| match gpu_of("conv2d", &[g, &x, &w])? {
                Some(ctx) => gpu_backward(ctx, &s, &x, &w, has_bias, &g.gbuf("conv2d")?),
                None => conv_backward(&s, &x, &w, has_bias, g.read().f32("conv2d")?),
            },
        ))
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
        let storage = match gpu_of("conv2d_leaky", &inputs)? {
            Some(ctx) => {
                // z = conv2d(x, w) + b, then y = leaky_relu(z) (z released right away)
                let z = gpu_forward(ctx, &s, self, weight, bias)?;
                let y = gew::unary(ctx, Unary::LeakyRelu(slope), &z)?;
                ctx.recycle(z);
                Storage::gpu(y, DType::F32)
            }
            None => cpu_forward(&s, self, weight, bias, Some(slope))?,
        };
        let (x, w) = (self.clone(), weight.clone());
        let has_bias = bias.is_some();
        Ok(Tensor::from_op_with_output(
            vec![s.n, s.cout, s.h, s.w],
            storage,
            "conv2d_leaky",
            &inputs,
            move |out| {
                move |g: &Tensor| {
                    let y = out.get("conv2d_leaky")?;
                    if let Some(ctx) = gpu_of("conv2d_leaky", &[g, &y, &x, &w])? {
                        // dz = dy (y > 0 ? 1 : slope): leaky_relu's VJP evaluated at y
                        let gz = gew::unary_backward(
                            ctx,
                            Unary::LeakyRelu(slope),
                            &y.gbuf("conv2d_leaky")?,
                            &g.gbuf("conv2d_leaky")?,
                        )?;
                        let r = gpu_backward(ctx, &s, &x, &w, has_bias, &gz);
                        ctx.recycle(gz);
                        return r;
                    }
                    let ys = y.read();
                    let gz = super::par_zip(
                        g.read().f32("conv2d_leaky")?,
                        ys.f32("conv2d_leaky")?,
                        |g, y| {
                            if y > 0.0 {
                                g
                            } else {
                                slope * g
                            }
                        },
                    );
                    conv_backward(&s, &x, &w, has_bias, &gz)
                }
            },
        ))
    }
}
