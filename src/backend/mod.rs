//! The two backends, beneath the engine: `cpu/` computes on host slices (rayon, rustfft, gemm),
//! `gpu/` launches the WGSL kernels of `kernels/` through wgpu. Neither knows about tensors or
//! the tape. The descriptions of an op that both backends share live here, once: the binary and
//! unary maps, the convolution's shape.
//!
//! Public only for the crate's own tests and benchmarks (`#[doc(hidden)]` in `lib.rs`).

pub mod cpu;
pub(crate) mod fastmath;
pub mod gpu;
pub mod layout;

/// Complex single precision, `re, im` (two f32 words on the device).
pub type C32 = num_complex::Complex32;

/// The four broadcasting binary ops, on real or complex values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b` (complex: the complex product)
    Mul,
    /// `a / b`
    Div,
}

impl BinOp {
    /// The op's name, for messages and the tape.
    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::Div => "div",
        }
    }

    /// `a (op) b`.
    #[inline(always)]
    pub fn apply<T>(self, a: T, b: T) -> T
    where
        T: std::ops::Add<Output = T>
            + std::ops::Sub<Output = T>
            + std::ops::Mul<Output = T>
            + std::ops::Div<Output = T>,
    {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }

    /// The opcode the WGSL kernels switch on (`kernels/broadcast.wgsl`).
    pub(crate) fn code(self) -> u32 {
        self as u32
    }
}

/// The real unary maps `y = f(x)` with their derivatives (VJP `dx = dy f'(x)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `e^x`
    Exp,
    /// `ln x`
    Log,
    /// `sqrt x`
    Sqrt,
    /// `x^2`
    Square,
    /// `tanh x`
    Tanh,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `x` for `x > 0`, else `slope x`
    LeakyRelu(f32),
    /// `|x|`
    Abs,
}

impl UnaryOp {
    /// The op's name, for messages and the tape.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Square => "square",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Abs => "abs",
        }
    }

    /// `f(x)`.
    #[inline(always)]
    pub fn f(self, x: f32) -> f32 {
        match self {
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Square => x * x,
            UnaryOp::Tanh => fastmath::tanh(x),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    s * x
                }
            }
            UnaryOp::Abs => x.abs(),
        }
    }

    /// `f'(x)` (for `abs`, 0 at 0).
    #[inline(always)]
    pub fn df(self, x: f32) -> f32 {
        match self {
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => 1.0 / x,
            UnaryOp::Sqrt => 0.5 / x.sqrt(),
            UnaryOp::Square => 2.0 * x,
            UnaryOp::Tanh => {
                let t = fastmath::tanh(x);
                1.0 - t * t
            }
            UnaryOp::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            UnaryOp::LeakyRelu(s) => {
                if x > 0.0 {
                    1.0
                } else {
                    s
                }
            }
            UnaryOp::Abs => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A stride-1 2-D cross-correlation with zero "same" padding `k / 2` (PyTorch `conv2d`), NCHW:
/// x (n, cin, h, w), weight (cout, cin, k, k), bias (cout), y (n, cout, h, w).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Odd kernel size.
    pub k: usize,
}

impl ConvShape {
    /// Pixels per plane.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Elements of x.
    pub fn x_len(&self) -> usize {
        self.n * self.cin * self.hw()
    }
    /// Elements of y.
    pub fn y_len(&self) -> usize {
        self.n * self.cout * self.hw()
    }
    /// Elements of the weight.
    pub fn w_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }
    /// Reduction length of one output value: `cin k k`.
    pub fn kdim(&self) -> usize {
        self.cin * self.k * self.k
    }
}

/// Hyper-parameters of one AdamW step, `t` the 1-based step count
/// after this update (bias corrections `1 - beta^t` are computed from it in f64).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator guard.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// 1-based step number.
    pub t: u32,
}

/// Sizes of a spectral convolution (`backend/cpu/spectral.rs`): x (n, cin, h, w) real, kernel
/// (cout, cin, ph, pw) complex, y (n, cout, h, w) real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpectralShape {
    /// Samples.
    pub n: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Image rows, columns.
    pub h: usize,
    /// Image columns.
    pub w: usize,
    /// Padded rows (>= h).
    pub ph: usize,
    /// Padded columns (>= w).
    pub pw: usize,
}

/// Instance-norm operand: x (n, c, m) with m = H W pixels per plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormShape {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Pixels per plane.
    pub m: usize,
}

impl NormShape {
    /// Elements.
    pub fn numel(&self) -> usize {
        self.n * self.c * self.m
    }
    /// Planes (n c).
    pub fn planes(&self) -> usize {
        self.n * self.c
    }
}

/// Sizes of an affine bilinear sampling (`backend/cpu/sample.rs`): x (planes, h, w) sampled at
/// `s = A (j, i) + b` for every output pixel (i, j) of (planes, oh, ow); the affine map is the
/// six numbers `[a_cc, a_cr, b_c, a_rc, a_rr, b_r]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleShape {
    /// Planes (N C).
    pub planes: usize,
    /// Input rows.
    pub h: usize,
    /// Input columns.
    pub w: usize,
    /// Output rows.
    pub oh: usize,
    /// Output columns.
    pub ow: usize,
}

impl SampleShape {
    /// Elements of x.
    pub fn input_len(&self) -> usize {
        self.planes * self.h * self.w
    }
    /// Elements of y.
    pub fn output_len(&self) -> usize {
        self.planes * self.oh * self.ow
    }
}
