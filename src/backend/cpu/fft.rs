//! 2-D discrete Fourier transforms over the last two axes of host data, any sizes (rustfft;
//! plans cached per length and direction). Forward `X(k) = sum_r x(r) e^{-i k.r}` (NumPy's
//! sign), unnormalised.

use super::SyncPtr;
use crate::backend::C32;
use rayon::prelude::*;
pub(crate) use rustfft::FftDirection;
use rustfft::{Fft, FftPlanner};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

type Plan = Arc<dyn Fft<f32>>;
type PlanCache = (FftPlanner<f32>, HashMap<(usize, bool), Plan>);

fn plan(n: usize, dir: FftDirection) -> Plan {
    static PLANS: OnceLock<Mutex<PlanCache>> = OnceLock::new();
    let cell = PLANS.get_or_init(|| Mutex::new((FftPlanner::new(), HashMap::new())));
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    let (planner, cache) = &mut *guard;
    cache
        .entry((n, dir == FftDirection::Forward))
        .or_insert_with(|| planner.plan_fft(n, dir))
        .clone()
}

/// Length-`n` transforms of every contiguous run of `n` values, in parallel blocks.
fn fft_rows(data: &mut [C32], n: usize, dir: FftDirection) {
    if n <= 1 {
        return;
    }
    let p = plan(n, dir);
    let rows_per_task = (4096 / n).max(1);
    data.par_chunks_mut(n * rows_per_task).for_each(|block| {
        let mut scratch = vec![C32::new(0.0, 0.0); p.get_inplace_scratch_len()];
        p.process_with_scratch(block, &mut scratch);
    });
}

/// Length-`h` transforms down every column of every (h, w) slice, in place: blocks of
/// `COLS` columns are gathered into contiguous rows of a per-task scratch (in cache), transformed
/// and scattered back, so no full-size transposed copy is allocated or streamed through.
fn fft_columns(data: &mut [C32], h: usize, w: usize, dir: FftDirection) {
    const COLS: usize = 16;
    if h <= 1 || w == 0 {
        return;
    }
    let p = plan(h, dir);
    let blocks = w.div_ceil(COLS);
    let ptr = SyncPtr(data.as_mut_ptr());
    let slices = data.len() / (h * w);
    (0..slices * blocks).into_par_iter().for_each_init(
        || {
            (
                vec![C32::new(0.0, 0.0); COLS * h],
                vec![C32::new(0.0, 0.0); p.get_inplace_scratch_len()],
            )
        },
        |(buf, scratch), t| {
            let (slice, c0) = (t / blocks, (t % blocks) * COLS);
            let nc = COLS.min(w - c0);
            // SAFETY: task t alone reads and writes columns c0..c0+nc of slice `slice`, all
            // inside `data`.
            let base = unsafe { ptr.get().add(slice * h * w + c0) };
            for r in 0..h {
                // SAFETY: as above; row r of the slice, columns c0..c0+nc.
                let row = unsafe { std::slice::from_raw_parts(base.add(r * w), nc) };
                for (c, &v) in row.iter().enumerate() {
                    buf[c * h + r] = v;
                }
            }
            p.process_with_scratch(&mut buf[..nc * h], scratch);
            for r in 0..h {
                // SAFETY: as above.
                let row = unsafe { std::slice::from_raw_parts_mut(base.add(r * w), nc) };
                for (c, v) in row.iter_mut().enumerate() {
                    *v = buf[c * h + r];
                }
            }
        },
    );
}

/// Unnormalised 2-D transform of every (h, w) slice of `data`, then multiplied by `scale`.
pub(crate) fn fft2(data: &mut [C32], h: usize, w: usize, dir: FftDirection, scale: f32) {
    fft2_rows(data, h, w, dir, scale, RowsUsed::All);
}

/// Which rows of every (h, w) slice matter, so a zero-padded transform can skip work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowsUsed {
    /// Every row in and out.
    All,
    /// Only rows `0..k` of the input are non-zero (the rest are zero): their row transforms are
    /// the only ones needed, then the columns.
    Input(usize),
    /// Only rows `0..k` of the output are wanted: columns first, then those rows (the other
    /// output rows are left holding column transforms, not the 2-D result).
    Output(usize),
}

/// [`fft2`] that skips the row transforms of known-zero input rows or unwanted output rows
/// (2-D transforms are separable, so rows and columns may go in either order).
pub(crate) fn fft2_rows(
    data: &mut [C32],
    h: usize,
    w: usize,
    dir: FftDirection,
    scale: f32,
    rows: RowsUsed,
) {
    let plane = (h * w).max(1);
    let rows_of = |data: &mut [C32], k: usize| {
        if k >= h {
            fft_rows(data, w, dir);
        } else {
            for slice in data.chunks_mut(plane) {
                fft_rows(&mut slice[..k * w], w, dir);
            }
        }
    };
    let columns = |data: &mut [C32]| fft_columns(data, h, w, dir);
    match rows {
        RowsUsed::All => {
            rows_of(data, h);
            columns(data);
        }
        RowsUsed::Input(k) => {
            rows_of(data, k);
            columns(data);
        }
        RowsUsed::Output(k) => {
            columns(data);
            rows_of(data, k);
        }
    }
    if scale != 1.0 {
        data.par_iter_mut().for_each(|z| *z *= scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skipping known-zero input rows or unwanted output rows changes nothing that is kept.
    #[test]
    fn row_skipping_transforms_agree_with_the_full_one() {
        let (h, w, k) = (12, 10, 5);
        let mut x = vec![C32::new(0.0, 0.0); 2 * h * w];
        for (i, z) in x.iter_mut().enumerate() {
            if (i % (h * w)) / w < k {
                *z = C32::new((i as f32 * 0.37).sin(), (i as f32 * 0.11).cos());
            }
        }
        let mut full = x.clone();
        fft2(&mut full, h, w, FftDirection::Forward, 1.0);
        let mut part = x.clone();
        fft2_rows(
            &mut part,
            h,
            w,
            FftDirection::Forward,
            1.0,
            RowsUsed::Input(k),
        );
        let close = |a: &C32, b: &C32| (a - b).norm() <= 1e-5 * (1.0 + b.norm());
        assert!(full.iter().zip(&part).all(|(a, b)| close(a, b)));
        let mut inv_full = full.clone();
        fft2(&mut inv_full, h, w, FftDirection::Inverse, 0.5);
        let mut inv_part = full.clone();
        fft2_rows(
            &mut inv_part,
            h,
            w,
            FftDirection::Inverse,
            0.5,
            RowsUsed::Output(k),
        );
        for s in 0..2 {
            let r = s * h * w..s * h * w + k * w;
            assert!(inv_full[r.clone()]
                .iter()
                .zip(&inv_part[r])
                .all(|(a, b)| close(a, b)));
        }
    }
}
