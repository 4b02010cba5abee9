//! 2-D convolution (PyTorch's `conv2d`: cross-correlation, stride 1, zero "same" padding k/2,
//! odd square kernels), NCHW, with optional bias. Kernels in `cpu/conv.rs`.

use crate::cpu::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvShape};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

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
        let mut y = vec![0f32; s.n * s.cout * s.h * s.w];
        {
            let bias_guard = bias.map(|b| b.read());
            let bias_data = match &bias_guard {
                Some(g) => Some(g.f32("conv2d")?),
                None => None,
            };
            conv2d_forward(
                &s,
                self.read().f32("conv2d")?,
                weight.read().f32("conv2d")?,
                bias_data,
                &mut y,
            );
        }
        let (x, w) = (self.clone(), weight.clone());
        let has_bias = bias.is_some();
        let mut inputs = vec![self, weight];
        if let Some(b) = bias {
            inputs.push(b);
        }
        Ok(Tensor::from_op(
            vec![s.n, s.cout, s.h, s.w],
            Storage::from_f32(y),
            "conv2d",
            &inputs,
            move |g| {
                let gs = g.read();
                let gy = gs.f32("conv2d")?;
                let gx = if x.is_tracked() {
                    let mut gx = vec![0f32; x.numel()];
                    conv2d_backward_input(&s, gy, w.read().f32("conv2d")?, &mut gx);
                    Some(Tensor::from_shape_vec(x.shape(), gx)?)
                } else {
                    None
                };
                let mut gw = vec![0f32; w.numel()];
                let mut gb = vec![0f32; s.cout];
                conv2d_backward_weight(
                    &s,
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
            },
        ))
    }
}
