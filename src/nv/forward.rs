//! NV magnetometry forward model (SPEC section 2): magnetisation M(x, y) of a film of thickness t
//! -> stray field B at standoff d above it -> B_NV = n . B, in Fourier space with zero padding.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::gpu::{broadcast as gb, complex as gc, fft as gfft, pad as gpad, GpuBuffer, GpuContext};
use crate::ops::fft::{fft2_raw_rows, RowsUsed};
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor, C32};
use rustfft::FftDirection;
use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::{Arc, Mutex, OnceLock};

/// Vacuum permeability (CODATA 2018), T m / A.
pub const MU0: f64 = 1.256_637_062_12e-6;

/// Geometry and sensor of an NV measurement. Lengths in metres, angles in degrees.
#[derive(Clone, Debug, PartialEq)]
pub struct NvGeometry {
    /// Pixel size (m).
    pub pixel: f64,
    /// Film thickness t (m); the film occupies -t <= z <= 0.
    pub thickness: f64,
    /// Sensor height d above the top surface (m).
    pub standoff: f64,
    /// NV axis polar angle from the sample normal (deg), default 54.75.
    pub theta_deg: f64,
    /// NV axis azimuth from +x (deg), default 0.
    pub phi_deg: f64,
    /// Zero-padding factor before the FFT (>= 1), default 2.
    pub pad: usize,
    /// Optional smooth low-pass `1/(1+(k/kc)^4)` (kc in rad/m), applied to model and data alike.
    pub cutoff_k: Option<f64>,
}

impl Default for NvGeometry {
    /// The paper's defaults: 5 nm pixels, 20 nm Permalloy film, 50 nm standoff, 54.75 deg, pad 2.
    fn default() -> Self {
        NvGeometry {
            pixel: 5e-9,
            thickness: 20e-9,
            standoff: 50e-9,
            theta_deg: 54.75,
            phi_deg: 0.0,
            pad: 2,
            cutoff_k: None,
        }
    }
}

impl NvGeometry {
    /// Unit vector of the NV axis `(sin th cos ph, sin th sin ph, cos th)`.
    pub fn axis(&self) -> [f64; 3] {
        let (th, ph) = (self.theta_deg.to_radians(), self.phi_deg.to_radians());
        [th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()]
    }

    /// Checks that lengths are positive and finite and the padding factor is at least 1.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("pixel", self.pixel), ("thickness", self.thickness)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::arg(
                    "nv geometry",
                    format!("{name} must be positive, got {v}"),
                ));
            }
        }
        if !(self.standoff.is_finite() && self.standoff >= 0.0) {
            return Err(Error::arg(
                "nv geometry",
                format!("standoff must be >= 0, got {}", self.standoff),
            ));
        }
        if self.pad == 0 {
            return Err(Error::arg("nv geometry", "pad must be >= 1"));
        }
        if let Some(kc) = self.cutoff_k {
            if !(kc.is_finite() && kc > 0.0) {
                return Err(Error::arg(
                    "nv geometry",
                    format!("cutoff-k must be positive, got {kc}"),
                ));
            }
        }
        Ok(())
    }

    fn key(&self, h: usize, w: usize) -> String {
        format!("{h}x{w} {self:?}")
    }
}

/// Angular wave numbers `2 pi fftfreq(n, d)`.
pub fn wavenumbers(n: usize, d: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let f = if i < n.div_ceil(2) {
                i as f64
            } else {
                i as f64 - n as f64
            };
            2.0 * PI * f / (n as f64 * d)
        })
        .collect()
}

/// Fourier-space kernels on the padded grid (ph, pw), without the standoff factor e^{-kd}.
struct Kernels {
    ph: usize,
    pw: usize,
    /// |k| (rad/m), (ph, pw)
    kmag: Vec<f64>,
    /// `A_rc(k) * (-(mu0/2) (1-e^{-kt})/k) * lowpass`, r = field component, c = M component.
    a: [[Vec<C32>; 3]; 3],
}

impl Kernels {
    fn new(h: usize, w: usize, g: &NvGeometry) -> Kernels {
        let (ph, pw) = (h * g.pad, w * g.pad);
        let (ky, kx) = (wavenumbers(ph, g.pixel), wavenumbers(pw, g.pixel));
        let n = ph * pw;
        let mut kmag = vec![0.0; n];
        let zero = || vec![C32::new(0.0, 0.0); n];
        let mut a: [[Vec<C32>; 3]; 3] = std::array::from_fn(|_| std::array::from_fn(|_| zero()));
        let t = g.thickness;
        for (r, &ky) in ky.iter().enumerate() {
            for (c, &kx) in kx.iter().enumerate() {
                let i = r * pw + c;
                let k = (kx * kx + ky * ky).sqrt();
                kmag[i] = k;
                if k == 0.0 {
                    continue; // B(0) = 0: the limits of kx^2/k, kx ky/k, i kx, k all vanish
                }
                let thick = -(1.0 - (-k * t).exp()) / k; // (1 - e^{-kt})/k, thin film -> t
                let lp = g.cutoff_k.map_or(1.0, |kc| 1.0 / (1.0 + (k / kc).powi(4)));
                let pre = 0.5 * MU0 * thick * lp;
                // A(k) = [[kx^2/k, kx ky/k, i kx], [kx ky/k, ky^2/k, i ky], [i kx, i ky, -k]]
                let m = [
                    [(kx * kx / k, 0.0), (kx * ky / k, 0.0), (0.0, kx)],
                    [(kx * ky / k, 0.0), (ky * ky / k, 0.0), (0.0, ky)],
                    [(0.0, kx), (0.0, ky), (-k, 0.0)],
                ];
                for rr in 0..3 {
                    for cc in 0..3 {
                        let (re, im) = m[rr][cc];
                        a[rr][cc][i] = C32::new((pre * re) as f32, (pre * im) as f32);
                    }
                }
            }
        }
        Kernels { ph, pw, kmag, a }
    }

    fn cached(h: usize, w: usize, g: &NvGeometry) -> Arc<Kernels> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Kernels>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() > 16 {
            c.clear();
        }
        c.entry(g.key(h, w))
            .or_insert_with(|| Arc::new(Kernels::new(h, w, g)))
            .clone()
    }
}

/// The differentiable operator M (1, C, H, W) in A/m -> B_NV (1, 1, H, W) in tesla (C = 2 for
/// Mx, My; 3 adds Mz), and M -> (Bx, By, Bz). Kernels are built once per (shape, geometry).
pub struct NvForward {
    h: usize,
    w: usize,
    geom: NvGeometry,
    k: Arc<Kernels>,
    /// B_NV kernels with the fixed standoff, (1, 3, ph, pw)
    knv: Tensor,
    /// B_NV kernels without e^{-kd}, for a trained standoff, (1, 3, ph, pw)
    knv0: Tensor,
    /// -|k| (ph, pw), to build e^{-kd}
    neg_kmag: Tensor,
    /// (Bx, By, Bz) kernels with the standoff, (3, 3, ph, pw) = [field component, M component]
    kfield: Tensor,
    /// Device copies of the constants, made on first use on the GPU.
    gpu: OnceLock<GpuConsts>,
}

/// `NvForward`'s constant tensors on the GPU.
struct GpuConsts {
    knv: Tensor,
    knv0: Tensor,
    neg_kmag: Tensor,
    kfield: Tensor,
}

impl NvForward {
    /// Operator for H x W images.
    pub fn new(h: usize, w: usize, geom: &NvGeometry) -> Result<NvForward> {
        geom.validate()?;
        if h == 0 || w == 0 {
            return Err(Error::arg("nv forward", "empty image"));
        }
        let k = Kernels::cached(h, w, geom);
        let n = geom.axis();
        let (ph, pw) = (k.ph, k.pw);
        let mut knv = Vec::with_capacity(3 * ph * pw);
        let mut knv0 = Vec::with_capacity(3 * ph * pw);
        for c in 0..3 {
            for i in 0..ph * pw {
                let v: C32 = (0..3).map(|r| k.a[r][c][i] * n[r] as f32).sum();
                knv0.push(v);
                knv.push(v * (-k.kmag[i] * geom.standoff).exp() as f32);
            }
        }
        let neg_kmag = k.kmag.iter().map(|&v| -v as f32).collect();
        let mut kfield = Vec::with_capacity(9 * ph * pw);
        for r in 0..3 {
            for c in 0..3 {
                kfield.extend(
                    k.a[r][c]
                        .iter()
                        .zip(&k.kmag)
                        .map(|(&a, &km)| a * (-km * geom.standoff).exp() as f32),
                );
            }
        }
        Ok(NvForward {
            h,
            w,
            geom: geom.clone(),
            knv: Tensor::from_shape_vec_c(&[1, 3, ph, pw], knv)?,
            knv0: Tensor::from_shape_vec_c(&[1, 3, ph, pw], knv0)?,
            neg_kmag: Tensor::from_shape_vec(&[ph, pw], neg_kmag)?,
            kfield: Tensor::from_shape_vec_c(&[3, 3, ph, pw], kfield)?,
            k,
            gpu: OnceLock::new(),
        })
    }

    /// The constants on `device`: `(knv, knv0, neg_kmag, kfield)`.
    fn consts(&self, device: Device) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
        if device == Device::Cpu {
            return Ok((
                self.knv.clone(),
                self.knv0.clone(),
                self.neg_kmag.clone(),
                self.kfield.clone(),
            ));
        }
        if self.gpu.get().is_none() {
            let c = GpuConsts {
                knv: self.knv.to_device(device)?,
                knv0: self.knv0.to_device(device)?,
                neg_kmag: self.neg_kmag.to_device(device)?,
                kfield: self.kfield.to_device(device)?,
            };
            let _ = self.gpu.set(c);
        }
        let g = self
            .gpu
            .get()
            .ok_or_else(|| Error::Backend("nv forward: GPU constants missing".into()))?;
        Ok((
            g.knv.clone(),
            g.knv0.clone(),
            g.neg_kmag.clone(),
            g.kfield.clone(),
        ))
    }

    /// The geometry.
    pub fn geometry(&self) -> &NvGeometry {
        &self.geom
    }

    fn check_input(&self, m: &Tensor) -> Result<()> {
        if m.rank() != 4
            || m.shape()[0] != 1
            || !(2..=3).contains(&m.shape()[1])
            || m.hw("nv")? != (self.h, self.w)
        {
            return Err(Error::shape(
                "nv forward",
                m.shape(),
                format!("expected (1, 2|3, {}, {})", self.h, self.w),
            ));
        }
        Ok(())
    }

    fn spectrum(&self, m: &Tensor) -> Result<Tensor> {
        self.check_input(m)?;
        let (ph, pw) = (self.k.ph, self.k.pw);
        let mp = m.pad2d(0, ph - self.h, 0, pw - self.w)?;
        Tensor::complex(&mp, &mp.zeros_like())?.fft2()
    }

    fn to_image(&self, spec: Tensor) -> Result<Tensor> {
        spec.ifft2()?.re()?.crop2d(0, self.h, 0, self.w)
    }

    fn kernel_for(&self, c: usize, standoff: Option<&Tensor>, device: Device) -> Result<Tensor> {
        let (ph, pw) = (self.k.ph, self.k.pw);
        let (knv, knv0, neg_kmag, _) = self.consts(device)?;
        match standoff {
            None => knv.narrow(1, 0, c),
            Some(d) => {
                // e^{-k d} with d a (trainable) scalar
                let e = neg_kmag.mul(&d.reshape(&[1, 1])?)?.exp()?;
                let e = Tensor::complex(&e, &e.zeros_like())?.reshape(&[1, 1, ph, pw])?;
                knv0.narrow(1, 0, c)?.mul(&e)
            }
        }
    }

    /// `B_NV = n . B(M)`: (1, C, H, W) A/m -> (1, 1, H, W) T, as one fused op:
    /// `y = crop(Re(F^-1 sum_c K_c F pad(m_c)))`.
    /// VJP (F unnormalised, F^-1 = F^H / n): `dm_c = crop(Re(F^-1 (conj(K_c) F pad(dy))))`.
    pub fn bnv(&self, m: &Tensor) -> Result<Tensor> {
        self.check_input(m)?;
        if let Some(ctx) = gpu_of("nv_bnv", &[m])? {
            return self.bnv_gpu(ctx, m);
        }
        let c = m.shape()[1];
        let (h, w, ph, pw) = (self.h, self.w, self.k.ph, self.k.pw);
        let n = ph * pw;
        let kern = self.knv.to_vec_c()?;
        let zero = C32::new(0.0, 0.0);
        let embed = move |src: &[f32]| {
            let mut buf = vec![zero; n];
            for r in 0..h {
                for (d, &v) in buf[r * pw..r * pw + w]
                    .iter_mut()
                    .zip(&src[r * w..(r + 1) * w])
                {
                    *d = C32::new(v, 0.0);
                }
            }
            buf
        };
        let crop_re = move |buf: &[C32]| -> Vec<f32> {
            (0..h)
                .flat_map(|r| buf[r * pw..r * pw + w].iter().map(|z| z.re))
                .collect()
        };
        // index of -k on the (ph, pw) grid
        let neg = move |i: usize| ((ph - i / pw) % ph) * pw + (pw - i % pw) % pw;
        let md = m.to_vec()?;
        let plane = |ch: usize| &md[ch * h * w..(ch + 1) * h * w];
        let mut acc = vec![zero; n];
        let mut ch = 0;
        while ch < c {
            if ch + 1 < c {
                // two real channels in one transform: Z = F(a + i b),
                // A(k) = (Z(k) + conj Z(-k)) / 2, B(k) = (Z(k) - conj Z(-k)) / 2i
                let mut buf = embed(plane(ch));
                for (z, &v) in buf.iter_mut().zip(embed(plane(ch + 1)).iter()) {
                    z.im = v.re;
                }
                fft2_raw_rows(
                    &mut buf,
                    ph,
                    pw,
                    FftDirection::Forward,
                    1.0,
                    RowsUsed::Input(h),
                );
                let (k0, k1) = (
                    &kern[ch * n..(ch + 1) * n],
                    &kern[(ch + 1) * n..(ch + 2) * n],
                );
                for (i, a) in acc.iter_mut().enumerate() {
                    let (z, zn) = (buf[i], buf[neg(i)].conj());
                    let xa = (z + zn) * 0.5;
                    let xb = (z - zn) * C32::new(0.0, -0.5);
                    *a += xa * k0[i] + xb * k1[i];
                }
                ch += 2;
            } else {
                let mut buf = embed(plane(ch));
                fft2_raw_rows(
                    &mut buf,
                    ph,
                    pw,
                    FftDirection::Forward,
                    1.0,
                    RowsUsed::Input(h),
                );
                for ((a, b), k) in acc.iter_mut().zip(&buf).zip(&kern[ch * n..(ch + 1) * n]) {
                    *a += b * k;
                }
                ch += 1;
            }
        }
        fft2_raw_rows(
            &mut acc,
            ph,
            pw,
            FftDirection::Inverse,
            1.0 / n as f32,
            RowsUsed::Output(h),
        );
        let y = crop_re(&acc);
        let mshape = m.shape().to_vec();
        Ok(Tensor::from_op(
            vec![1, 1, h, w],
            Storage::from_f32(y),
            "nv_bnv",
            &[m],
            move |g| {
                let mut gbuf = embed(&g.to_vec()?);
                fft2_raw_rows(
                    &mut gbuf,
                    ph,
                    pw,
                    FftDirection::Forward,
                    1.0,
                    RowsUsed::Input(h),
                );
                let mut gm = Vec::with_capacity(c * h * w);
                let mut ch = 0;
                while ch < c {
                    let k0 = &kern[ch * n..(ch + 1) * n];
                    if ch + 1 < c {
                        // Re F^-1 t = F^-1 Herm(t), Herm(t)(k) = (t(k) + conj t(-k)) / 2, so one
                        // inverse transform of Herm(t0) + i Herm(t1) yields both channels
                        let k1 = &kern[(ch + 1) * n..(ch + 2) * n];
                        let t = |k: &[C32], i: usize| gbuf[i] * k[i].conj();
                        let mut u: Vec<C32> = (0..n)
                            .map(|i| {
                                let j = neg(i);
                                let h0 = (t(k0, i) + t(k0, j).conj()) * 0.5;
                                let h1 = (t(k1, i) + t(k1, j).conj()) * 0.5;
                                h0 + h1 * C32::new(0.0, 1.0)
                            })
                            .collect();
                        fft2_raw_rows(
                            &mut u,
                            ph,
                            pw,
                            FftDirection::Inverse,
                            1.0 / n as f32,
                            RowsUsed::Output(h),
                        );
                        gm.extend(crop_re(&u));
                        gm.extend((0..h).flat_map(|r| u[r * pw..r * pw + w].iter().map(|z| z.im)));
                        ch += 2;
                    } else {
                        let mut t: Vec<C32> =
                            gbuf.iter().zip(k0).map(|(z, k)| z * k.conj()).collect();
                        fft2_raw_rows(
                            &mut t,
                            ph,
                            pw,
                            FftDirection::Inverse,
                            1.0 / n as f32,
                            RowsUsed::Output(h),
                        );
                        gm.extend(crop_re(&t));
                        ch += 1;
                    }
                }
                Ok(vec![Some(Tensor::from_shape_vec(&mshape, gm)?)])
            },
        ))
    }

    /// GPU branch of [`NvForward::bnv`]: the same fused operator from device kernels.
    fn bnv_gpu(&self, ctx: &'static GpuContext, m: &Tensor) -> Result<Tensor> {
        const OP: &str = "nv_bnv";
        let c = m.shape()[1];
        let (h, w, ph, pw) = (self.h, self.w, self.k.ph, self.k.pw);
        let n = ph * pw;
        let (knv, ..) = self.consts(Device::Gpu)?;
        let kern = knv.narrow(1, 0, c)?.gbuf(OP)?; // (c, ph, pw) complex
                                                   // pad(x) of `planes` real (h, w) planes as complex (ph, pw) planes
        let embed = move |x: &GpuBuffer, planes: usize| -> Result<GpuBuffer> {
            let s = gpad::Planes {
                planes,
                h,
                w,
                complex: false,
            };
            let re = gpad::pad2d(ctx, x, s, 0, ph - h, 0, pw - w)?;
            let zero = ctx.zeros(re.len)?;
            let z = gc::from_re_im(ctx, &re, &zero)?;
            ctx.recycle(re);
            ctx.recycle(zero);
            Ok(z)
        };
        // crop(re(z)) of `planes` complex (ph, pw) planes
        let crop_re = move |z: GpuBuffer, planes: usize| -> Result<GpuBuffer> {
            let re = gc::re(ctx, &z)?;
            ctx.recycle(z);
            let s = gpad::Planes {
                planes,
                h: ph,
                w: pw,
                complex: false,
            };
            let y = gpad::crop2d(ctx, &re, s, 0, h, 0, w)?;
            ctx.recycle(re);
            Ok(y)
        };
        // y = crop(Re(F^-1 sum_c K_c F pad(m_c)))
        let mz = embed(&m.gbuf(OP)?, c)?;
        let spec = gfft::fft2(ctx, &mz, c, ph, pw)?;
        ctx.recycle(mz);
        let prod = gc::cmul(ctx, &spec, &kern)?;
        ctx.recycle(spec);
        let acc = gb::sum_to(ctx, &prod, (&[n], &[1]), (&[c], &[n]), true)?;
        ctx.recycle(prod);
        let yz = gfft::ifft2(ctx, &acc, 1, ph, pw)?;
        ctx.recycle(acc);
        let y = crop_re(yz, 1)?;
        let mshape = m.shape().to_vec();
        Ok(Tensor::from_op(
            vec![1, 1, h, w],
            Storage::gpu(y, DType::F32),
            OP,
            &[m],
            move |g| {
                // dm_c = crop(Re(F^-1 (conj(K_c) G))), G = F pad(dy). With u_c = K_c conj(G):
                // F^-1(conj(u_c)) = conj(F u_c) / n, so Re(F^-1(G conj(K_c))) = Re(F u_c) / n:
                // one product and one forward transform over the c planes, no conjugation pass.
                let gz = embed(&g.gbuf(OP)?, 1)?;
                let big_g = gfft::fft2(ctx, &gz, 1, ph, pw)?;
                ctx.recycle(gz);
                let u = gc::cmul_conj(ctx, &kern, &big_g)?;
                ctx.recycle(big_g);
                let fu = gfft::fft2_scaled(
                    ctx,
                    &u,
                    c,
                    ph,
                    pw,
                    gfft::Direction::Forward,
                    1.0 / n as f32,
                )?;
                ctx.recycle(u);
                let gm = crop_re(fu, c)?;
                Ok(vec![Some(Tensor::from_storage(
                    mshape.clone(),
                    Storage::gpu(gm, DType::F32),
                ))])
            },
        ))
    }

    /// `B_NV` with the standoff given as a scalar tensor (metres), differentiable with respect to
    /// it (composed from tensor ops: pad, FFT, kernel product, sum, inverse FFT, crop).
    pub fn bnv_with_standoff(&self, m: &Tensor, standoff: &Tensor) -> Result<Tensor> {
        let spec = self.spectrum(m)?;
        let c = m.shape()[1];
        let prod = spec
            .mul(&self.kernel_for(c, Some(standoff), m.device())?)?
            .sum_axes(&[1], true)?;
        self.to_image(prod)
    }

    /// The stray field `(Bx, By, Bz)` at the sensor: (1, C, H, W) A/m -> (1, 3, H, W) T.
    pub fn field(&self, m: &Tensor) -> Result<Tensor> {
        let spec = self.spectrum(m)?; // (1, C, ph, pw)
        let c = m.shape()[1];
        // (1, C) x (3, C) -> (3, C) -> sum over C -> (3, 1)
        let (_, _, _, kfield) = self.consts(m.device())?;
        let prod = spec.mul(&kfield.narrow(1, 0, c)?)?.sum_axes(&[1], true)?;
        self.to_image(prod)?.reshape(&[1, 3, self.h, self.w])
    }
}
